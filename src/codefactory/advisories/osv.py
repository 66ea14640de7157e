"""An offline OSV advisory database for PyPI, read from a folder of OSV records.

Matching follows the OSV schema: a record affects a version listed in `versions`, or one
inside an `ECOSYSTEM` range (`introduced` / `fixed` / `last_affected` events, evaluated in
PEP 440 order). `GIT` ranges name commits, not releases, and are skipped; withdrawn records
are ignored. A range event whose version is not PEP 440 (real PyPA data has a few) is read
conservatively: an unreadable `introduced` counts as "0", an unreadable `fixed` or
`last_affected` is dropped, so the database over-reports rather than misses.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from codefactory.advisories.errors import AdvisoryFileInvalid

DEFAULT_ADVISORIES = Path(__file__).parent / "data"
"""The advisory folder shipped with the package, used by the demo."""

_SUFFIXES = (".yaml", ".yml", ".json")
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# (kind, version); version None means `introduced: "0"`, before every release.
_Event = tuple[str, Version | None]


@dataclass(frozen=True, kw_only=True)
class Advisory:
    """One advisory as it concerns one package: who it is, what fixes it."""

    id: str
    aliases: tuple[str, ...]
    summary: str
    package: str
    fixed: tuple[str, ...]
    severity: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        """The id then its aliases, as a reviewer searches for them."""
        return (self.id, *self.aliases)


@dataclass(frozen=True, kw_only=True)
class _Affected:
    """An advisory with the version facts needed to match it."""

    advisory: Advisory
    versions: frozenset[Version | str]
    ranges: tuple[tuple[_Event, ...], ...]

    def affects(self, version: Version | None, raw: str) -> bool:
        if (raw.strip() if version is None else version) in self.versions:
            return True
        if version is None:
            return False
        return any(_in_range(version, events) for events in self.ranges)


def _in_range(version: Version, events: tuple[_Event, ...]) -> bool:
    """OSV's reference evaluation of one range's sorted events."""
    affected = False
    for kind, at in events:
        if kind == "introduced":
            affected = affected or at is None or version >= at
        elif at is not None and kind == "fixed" and version >= at:
            affected = False
        elif at is not None and kind == "last_affected" and version > at:
            affected = False
    return affected


def _version_key(raw: str) -> Version | str:
    """A Version when the string is one (`3.6` equals `3.6.0`), else the string itself."""
    parsed = _parse_version(raw)
    return raw.strip() if parsed is None else parsed


def _parse_version(raw: str) -> Version | None:
    try:
        return Version(raw)
    except InvalidVersion:
        return None


@dataclass(frozen=True, kw_only=True)
class Freshness:
    """How much advisory data there is and how old: `records` OSV records, `synced_at` when
    `advisories sync`/`import` last wrote them (None: shipped or unknown), `source` the URL
    or folder they came from."""

    records: int
    synced_at: datetime | None = None
    source: str = ""


class AdvisoryDatabase:
    """PyPI advisories indexed by PEP 503 name; immutable once loaded."""

    def __init__(self, entries: Iterable[_Affected] = (), *, digest: str = "") -> None:
        self._by_package: dict[str, list[_Affected]] = defaultdict(list)
        for entry in entries:
            self._by_package[entry.advisory.package].append(entry)
        self.digest = digest
        """A digest of the records loaded: SCA baselines are cached per database version."""
        self._pending: dict[str, list[Any]] = {}
        self._source = Path("(index)")
        self._lock = threading.Lock()

    def freshness(self) -> Freshness:
        """The size and age of the data (filled in by `advisories sync`)."""
        return Freshness(records=sum(len(v) for v in self._by_package.values()))

    @classmethod
    def load(cls, folder: Path) -> AdvisoryDatabase:
        """Read every OSV file under `folder` (or an index file written by `advisories import`);
        a malformed file stops the load."""
        if folder.is_file() and folder.suffix == ".json":
            return cls.load_index(folder)
        if not folder.is_dir():
            raise AdvisoryFileInvalid(folder, "not a directory")
        entries: list[_Affected] = []
        hasher = hashlib.sha256()
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in _SUFFIXES and path.is_file():
                entries.extend(_read_file(path))
                hasher.update(str(path.relative_to(folder)).encode() + b"\0")
                hasher.update(path.read_bytes())
        return cls(entries, digest=hasher.hexdigest())

    @classmethod
    def load_index(cls, index: Path) -> AdvisoryDatabase:
        """Read an index written by `advisories import`: OSV records grouped by package.

        Records were validated when imported; each package's are parsed on first use, so a
        whole-ecosystem export loads in the time it takes to read the JSON.
        """
        try:
            raw = index.read_bytes()
            body = json.loads(raw)
        except (OSError, ValueError) as exc:
            raise AdvisoryFileInvalid(index, " ".join(str(exc).split())) from exc
        packages = body.get("packages") if isinstance(body, dict) else None
        if not isinstance(packages, dict):
            raise AdvisoryFileInvalid(index, "not an index written by `advisories import`")
        database = cls(digest=hashlib.sha256(raw).hexdigest())
        database._pending = {canonicalize_name(str(k)): list(v) for k, v in packages.items()}
        database._source = index
        return database

    def __len__(self) -> int:
        """How many (advisory, package) entries are loaded."""
        for name in list(self._pending):
            self._entries(name)
        return sum(len(entries) for entries in self._by_package.values())

    def advisories(self, name: str) -> list[Advisory]:
        """Every advisory loaded for a package, affecting or not."""
        return [e.advisory for e in self._entries(canonicalize_name(name))]

    def vulnerabilities(self, name: str, version: str | Version) -> list[Advisory]:
        """The advisories that affect `name` at `version`, each once, sorted by id."""
        raw = str(version)
        parsed = version if isinstance(version, Version) else _parse_version(raw)
        found: dict[str, Advisory] = {}
        for entry in self._entries(canonicalize_name(name)):
            if entry.affects(parsed, raw):
                found.setdefault(entry.advisory.id, entry.advisory)
        return [found[key] for key in sorted(found)]

    def _entries(self, package: str) -> list[_Affected]:
        """The entries of a PEP 503 name, parsing an index's records on first use."""
        if package in self._pending:
            with self._lock:
                records = self._pending.pop(package, None)
                for number, record in enumerate(records or []):
                    try:
                        parsed = parse_record(record)
                    except (TypeError, KeyError, ValueError) as exc:
                        where = f"{package} record {number}"
                        raise AdvisoryFileInvalid(self._source, f"{where}: {exc}") from exc
                    for entry in parsed:
                        if entry.advisory.package == package:
                            self._by_package[package].append(entry)
        return self._by_package.get(package, [])

    def lowest_safe_version(self, name: str, version: str | Version) -> Version | None:
        """The lowest fixed version above `version` that no advisory for `name` affects."""
        current = version if isinstance(version, Version) else _parse_version(str(version))
        if current is None:
            return None
        candidates = {
            fixed
            for advisory in self.advisories(name)
            for raw in advisory.fixed
            if (fixed := _parse_version(raw)) is not None and fixed > current
        }
        for candidate in sorted(candidates):
            if not self.vulnerabilities(name, candidate):
                return candidate
        return None


def _read_file(path: Path) -> list[_Affected]:
    record = read_record(path)
    try:
        return parse_record(record)
    except (TypeError, KeyError, ValueError) as exc:
        raise AdvisoryFileInvalid(path, str(exc)) from exc


def _expect(value: Any, kind: type, what: str) -> Any:
    if not isinstance(value, kind):
        raise TypeError(f"{what} must be a {kind.__name__}, not {type(value).__name__}")
    return value


def read_record(path: Path) -> Any:
    """The parsed content of one OSV file (YAML or JSON); AdvisoryFileInvalid when unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text) if path.suffix == ".json" else yaml.load(text, YAML_LOADER)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise AdvisoryFileInvalid(path, " ".join(str(exc).split()) or repr(exc)) from exc


def parse_record(record: Any) -> list[_Affected]:
    """The PyPI entries of one OSV record (none when withdrawn); TypeError or ValueError if
    it is malformed."""
    _expect(record, dict, "the record")
    record_id = _expect(record.get("id"), str, "`id`")
    if record.get("withdrawn"):
        return []
    aliases = tuple(
        _expect(a, str, "an alias") for a in _expect(record.get("aliases", []), list, "`aliases`")
    )
    details = _expect(record.get("details") or "", str, "`details`")
    summary = record.get("summary") or (details.strip().splitlines() or [""])[0]
    severity = _severity(record.get("severity") or [])
    grouped: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for affected in _expect(record.get("affected", []), list, "`affected`"):
        package = _expect(
            _expect(affected, dict, "an `affected` entry").get("package"), dict, "`package`"
        )
        if package.get("ecosystem") == "PyPI":
            grouped[canonicalize_name(_expect(package.get("name"), str, "`package.name`"))].append(
                affected
            )
    return [
        _entry(record_id, aliases, str(summary), name, severity, blocks)
        for name, blocks in grouped.items()
    ]


def _severity(entries: Any) -> str:
    for entry in _expect(entries, list, "`severity`"):
        score = _expect(entry, dict, "a `severity` entry").get("score")
        if score:
            return str(score)
    return ""


def _entry(
    record_id: str,
    aliases: tuple[str, ...],
    summary: str,
    package: str,
    severity: str,
    blocks: list[Mapping[str, Any]],
) -> _Affected:
    versions: set[Version | str] = set()
    ranges: list[tuple[_Event, ...]] = []
    for block in blocks:
        for raw in _expect(block.get("versions", []), list, "`versions`"):
            versions.add(_version_key(_expect(raw, str, "a listed version")))
        for spec in _expect(block.get("ranges", []), list, "`ranges`"):
            _expect(spec, dict, "a range")
            if _expect(spec.get("type"), str, "a range `type`") == "ECOSYSTEM":
                ranges.append(_events(_expect(spec.get("events"), list, "range `events`")))
    fixed = sorted(
        {at for events in ranges for kind, at in events if kind == "fixed" and at is not None}
    )
    advisory = Advisory(
        id=record_id,
        aliases=aliases,
        summary=summary,
        package=package,
        fixed=tuple(str(v) for v in fixed),
        severity=severity,
    )
    return _Affected(advisory=advisory, versions=frozenset(versions), ranges=tuple(ranges))


def _events(raw_events: list[Any]) -> tuple[_Event, ...]:
    events: list[_Event] = []
    for event in raw_events:
        for kind, raw in _expect(event, dict, "a range event").items():
            if kind not in ("introduced", "fixed", "last_affected"):
                continue  # `limit` only bounds GIT ranges
            at = None if raw == "0" else _parse_version(str(_expect(raw, str, f"`{kind}`")))
            if at is not None or kind == "introduced":
                events.append((kind, at))
    # `introduced: "0"` sorts first; otherwise PEP 440 order.
    return tuple(sorted(events, key=lambda e: (e[1] is not None, e[1] or Version("0"))))
