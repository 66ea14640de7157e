"""What the gate remembers per base commit: check baselines and test maps.

A base commit never changes, so what a check reported on it, under the same tool versions
and options (`digest`), never changes either. The store keeps these in `verify_cache`
(`store/verify_tables.py`); `MemoryVerifyCache` serves tests and one-off gates.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from codefactory.domain import Finding, Severity

REPOSITORY_PATH = "*"
"""The `path` of an entry that covers the whole tree rather than one file."""


@dataclass(frozen=True, kw_only=True)
class CacheKey:
    """One entry: what (`check`), at which commit, under which configuration, for which path."""

    check: str
    commit: str
    digest: str
    path: str = REPOSITORY_PATH


class VerifyCache(Protocol):
    """A key-value store of immutable per-commit facts; values are JSON text."""

    def get(self, key: CacheKey) -> str | None:
        """The stored value, or None when absent."""
        ...

    def put(self, key: CacheKey, value: str) -> None:
        """Store (or replace) the value of `key`."""
        ...


class MemoryVerifyCache:
    """A process-local cache; thread-safe, forgotten at exit."""

    def __init__(self) -> None:
        self._values: dict[CacheKey, str] = {}
        self._lock = threading.Lock()

    def get(self, key: CacheKey) -> str | None:
        with self._lock:
            return self._values.get(key)

    def put(self, key: CacheKey, value: str) -> None:
        with self._lock:
            self._values[key] = value


def findings_to_json(findings: list[Finding]) -> str:
    return json.dumps([asdict(f) for f in findings], sort_keys=True)


def findings_from_json(text: str) -> list[Finding]:
    """Findings stored by `findings_to_json`; ValueError when the text is not that."""
    try:
        items: list[dict[str, Any]] = json.loads(text)
        return [Finding(**{**item, "severity": Severity(item["severity"])}) for item in items]
    except (TypeError, KeyError) as exc:
        raise ValueError(f"not a stored list of findings: {exc}") from exc
