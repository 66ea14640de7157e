"""Which files of an advisory-database checkout are advisories.

A checkout of github.com/pypa/advisory-database (or github/advisory-database) holds OSV
records (`vulns/<package>/PYSEC-*.yaml`) beside files that are not advisories: `README.md`,
`LICENSE`, `.github/workflows/*.yml`, `tools/*.py`. Those are skipped and counted by kind:

- a path with a hidden component (`.github/`, `.git/`, `.pre-commit-config.yaml`): its
  first hidden component;
- a file whose suffix is not `.json`, `.yaml` or `.yml`: `*.<suffix>`, or `no suffix`;
- a JSON/YAML file that is neither named like an OSV id (`PYSEC-2024-60.yaml`,
  `GHSA-xxxx-xxxx-xxxx.json`) nor holds an object with OSV's keys (`id`, `affected`,
  `schema_version`, `modified`): `JSON/YAML, not OSV`.

Every other file is an advisory: one that cannot be parsed, or is not a valid OSV record,
refuses the import.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import yaml

from codefactory.advisories.records import YAML_LOADER

DATA_SUFFIXES = (".json", ".yaml", ".yml")
OSV_KEYS = frozenset({"id", "affected", "schema_version", "modified"})
# OSV ids are `<DB>-<rest>` with an upper-case database prefix (PYSEC, GHSA, CVE, MAL, ...)
_OSV_ID = re.compile(r"^[A-Z][A-Z0-9]*-[A-Za-z0-9._-]+$")
NOT_OSV = "JSON/YAML, not OSV"


@dataclass
class SkippedFiles:
    """Files that were not advisories, counted by kind (see the module docstring)."""

    counts: Counter[str] = field(default_factory=Counter)

    def skip(self, kind: str) -> None:
        """Count one skipped file of `kind`."""
        self.counts[kind] += 1

    def looks_like_advisory(self, name: str, record: Any) -> bool:
        """Whether a parsed data file is meant as an advisory; counts it as skipped if not."""
        if _OSV_ID.match(PurePosixPath(name).stem) or (
            isinstance(record, dict) and OSV_KEYS & set(record)
        ):
            return True
        self.skip(NOT_OSV)
        return False

    def describe(self) -> str:
        """`3 .github/, 2 *.md, 1 no suffix`: most frequent first, then by kind."""
        ranked = sorted(self.counts.items(), key=lambda item: (-item[1], item[0]))
        return ", ".join(f"{count} {kind}" for kind, count in ranked)

    @property
    def total(self) -> int:
        """How many files were skipped."""
        return sum(self.counts.values())


def advisory_candidate(name: str, skipped: SkippedFiles) -> bool:
    """Whether a file (POSIX path relative to the source) may be an advisory: not hidden and
    a JSON/YAML suffix; counts it as skipped otherwise."""
    path = PurePosixPath(name)
    hidden = next((part for part in path.parts if part.startswith(".")), None)
    if hidden is not None:
        skipped.skip(hidden if hidden == path.parts[-1] else f"{hidden}/")
    elif path.suffix.lower() not in DATA_SUFFIXES:
        skipped.skip(f"*{path.suffix.lower()}" if path.suffix else "no suffix")
    else:
        return True
    return False


def parse_text(name: str, body: bytes) -> Any:
    """The JSON (`.json`) or YAML content of a file; ValueError with the parser's reason."""
    try:
        text = body.decode("utf-8")
        if name.lower().endswith(".json"):
            return json.loads(text)
        return yaml.load(text, YAML_LOADER)
    except (UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise ValueError(" ".join(str(exc).split()) or repr(exc)) from exc
