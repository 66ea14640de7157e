"""An offline OSV advisory database for PyPI and npm, read from OSV records.

Matching follows the OSV schema: a record affects a version listed in `versions`, or one
inside an `ECOSYSTEM` or `SEMVER` range (`introduced` / `fixed` / `last_affected` events,
evaluated in the ecosystem's order: PEP 440 for PyPI, SemVer 2.0 for npm; see
`ecosystems.py`). `GIT` ranges name commits, not releases, and are skipped; withdrawn records
are ignored, and so are `affected` entries of other ecosystems. A range event whose version
the ecosystem cannot read (real PyPA data has a few) is read conservatively: an unreadable
`introduced` counts as "0", an unreadable `fixed` or `last_affected` is dropped, so the
database over-reports rather than misses.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from codefactory.advisories.aliases import merge_aliases
from codefactory.advisories.ecosystems import PYPI, SCHEMES, scheme_for
from codefactory.advisories.errors import AdvisoryFileInvalid
from codefactory.advisories.index import SideFile, open_index
from codefactory.advisories.manifest import EcosystemData, read_manifest
from codefactory.advisories.records import (
    YAML_LOADER,
    Advisory,
    Affected,
    check_record,
    parse_record,
    read_record,
)

__all__ = [
    "DEFAULT_ADVISORIES",
    "YAML_LOADER",
    "Advisory",
    "AdvisoryDatabase",
    "Freshness",
    "check_record",
    "parse_record",
    "read_record",
]

DEFAULT_ADVISORIES = Path(__file__).parent / "data"
"""The advisory folder shipped with the package, used by the demo."""

_SUFFIXES = (".yaml", ".yml", ".json")
_Key = tuple[str, str]  # (ecosystem, package key)


@dataclass(frozen=True, kw_only=True)
class Freshness:
    """How much advisory data there is and how old: `records` OSV records, `synced_at` when
    `advisories sync`/`import` last wrote them (None: shipped or unknown), `source` the URL
    or folder they came from."""

    records: int
    synced_at: datetime | None = None
    source: str = ""

    def age(self, now: datetime | None = None) -> timedelta | None:
        """How long ago the data was synced (None when unknown); `now` defaults to UTC now."""
        if self.synced_at is None:
            return None
        return (now or datetime.now(UTC)) - self.synced_at


class AdvisoryDatabase:
    """PyPI and npm advisories indexed by (ecosystem, package name); immutable once loaded."""

    def __init__(self, entries: Iterable[Affected] = (), *, digest: str = "") -> None:
        self._by_package: dict[_Key, list[Affected]] = defaultdict(list)
        for entry in entries:
            self._by_package[(entry.advisory.ecosystem, entry.advisory.package)].append(entry)
        self.digest = digest
        """A digest of the records loaded: SCA baselines are cached per database version."""
        self._pending: dict[_Key, list[Any]] = {}
        self._source = Path("(index)")
        self._provenance: dict[str, EcosystemData] = {}
        self._provenance_error = ""
        self._ids: dict[str, frozenset[str]] | None = None
        self._sides: dict[str, SideFile] = {}
        self._lock = threading.RLock()

    def freshness(self, *, ecosystem: str | None = None) -> Freshness:
        """The size and age of one ecosystem's data (`PyPI`, `npm`), or of all of it.

        `synced_at` comes from the metadata `advisories sync`/`import` wrote next to the index
        (for all ecosystems: the oldest); data read from a folder (the shipped advisories, or
        `advisories_dir`) has none. A manifest that does not match the index gives `synced_at`
        None and says so in `source`.
        """
        names = sorted(SCHEMES) if ecosystem is None else [scheme_for(ecosystem).ecosystem]
        present = [n for n in names if n in self._sides or self._has_records(n)]
        known = [self._provenance[n] for n in present if n in self._provenance]
        if present and len(known) == len(present) and not self._provenance_error:
            # the manifest's counts: an ecosystem's side file is not read to count it
            return Freshness(
                records=sum(data.records for data in known),
                synced_at=min(data.synced for data in known),
                source=", ".join(dict.fromkeys(data.source for data in known)),
            )
        ids = self._record_ids()
        records = len(set().union(*(ids.get(n, frozenset()) for n in names)))
        return Freshness(records=records, source=self._provenance_error or str(self._source))

    def _has_records(self, ecosystem: str) -> bool:
        with self._lock:
            return any(eco == ecosystem for eco, _ in self._pending) or any(
                eco == ecosystem and entries for (eco, _), entries in self._by_package.items()
            )

    def _record_ids(self) -> dict[str, frozenset[str]]:
        """Distinct record ids per ecosystem, counted once (the data never changes)."""
        for ecosystem in list(self._sides):
            self._read_side(ecosystem)
        with self._lock:
            if self._ids is None:
                ids: dict[str, set[str]] = defaultdict(set)
                for (eco, _), records in self._pending.items():
                    ids[eco].update(str(r.get("id")) for r in records if isinstance(r, dict))
                for (eco, _), entries in self._by_package.items():
                    ids[eco].update(entry.advisory.id for entry in entries)
                self._ids = {eco: frozenset(found) for eco, found in ids.items()}
            return self._ids

    @classmethod
    def load(cls, folder: Path) -> AdvisoryDatabase:
        """Read every OSV file under `folder` (or an index file written by `advisories import`
        or `sync`); a malformed file stops the load."""
        if folder.is_file() and folder.suffix == ".json":
            return cls.load_index(folder)
        if not folder.is_dir():
            raise AdvisoryFileInvalid(folder, "not a directory")
        entries: list[Affected] = []
        hasher = hashlib.sha256()
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in _SUFFIXES and path.is_file():
                entries.extend(_read_file(path))
                hasher.update(str(path.relative_to(folder)).encode() + b"\0")
                hasher.update(path.read_bytes())
        database = cls(entries, digest=hasher.hexdigest())
        database._source = folder
        return database

    @classmethod
    def load_index(cls, index: Path) -> AdvisoryDatabase:
        """Read an index written by `advisories import`/`sync`: OSV records grouped by
        ecosystem and package, with the manifest beside it for freshness.

        Records were validated when imported; each package's are parsed on first use, and
        an ecosystem's side file (`index.py`) is read when its first package is judged, so a
        whole-ecosystem export loads in the time it takes to read PyPI's JSON.
        """
        opened = open_index(index)
        database = cls(digest=opened.digest)
        database._pending = _pending_records(index, PYPI, opened.pypi)
        database._sides = opened.sides
        database._source = index
        try:
            database._provenance = read_manifest(index.parent)
        except ValueError as exc:
            database._provenance_error = f"unreadable manifest: {exc}"
        else:
            database._check_manifest(index)
        return database

    def _check_manifest(self, index: Path) -> None:
        """A manifest written for another index (a crash between the two renames, a hand
        edit) must not lend its date to this one."""
        try:
            body = json.loads((index.parent / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        digest = body.get("digest") if isinstance(body, dict) else None
        if self._provenance and body.get("format") == 2 and digest != self.digest:
            self._provenance_error = f"{index.parent / 'manifest.json'} does not match {index}"

    def __len__(self) -> int:
        """How many (advisory, package) entries are loaded."""
        for ecosystem in list(self._sides):
            self._read_side(ecosystem)
        for key in list(self._pending):
            self._entries(key)
        return sum(len(entries) for entries in self._by_package.values())

    def advisories(self, name: str, *, ecosystem: str = PYPI) -> list[Advisory]:
        """Every advisory loaded for a package, affecting or not."""
        scheme = scheme_for(ecosystem)
        return [e.advisory for e in self._entries((scheme.ecosystem, scheme.package_key(name)))]

    def vulnerabilities(
        self, name: str, version: str | Any, *, ecosystem: str = PYPI
    ) -> list[Advisory]:
        """The advisories that affect `name` at `version` in `ecosystem` (`PyPI`: PEP 503
        name, PEP 440 version; `npm`: exact name, SemVer 2.0 version), each once, sorted by
        id. Records that are aliases of each other (OSV's bucket holds both PYSEC-2018-28 and
        GHSA-x84v-xcm2-53pg for one flaw) are one advisory (`merge_aliases`). A version the
        ecosystem cannot read matches only records that list it verbatim."""
        scheme = scheme_for(ecosystem)
        raw = str(version)
        parsed = version if not isinstance(version, str) else scheme.parse(raw)
        found: dict[str, Advisory] = {}
        for entry in self._entries((scheme.ecosystem, scheme.package_key(name))):
            if entry.affects(parsed, raw):
                found.setdefault(entry.advisory.id, entry.advisory)
        return merge_aliases([found[key] for key in sorted(found)], scheme)

    def _entries(self, key: _Key) -> list[Affected]:
        """The entries of one package, parsing an index's records on first use."""
        if key[0] in self._sides:
            self._read_side(key[0])
        if key in self._pending:
            with self._lock:
                records = self._pending.pop(key, None)
                for number, record in enumerate(records or []):
                    try:
                        parsed = parse_record(record)
                    except (TypeError, KeyError, ValueError) as exc:
                        where = f"{key[1]} record {number} ({key[0]})"
                        raise AdvisoryFileInvalid(self._source, f"{where}: {exc}") from exc
                    for entry in parsed:
                        if (entry.advisory.ecosystem, entry.advisory.package) == key:
                            self._by_package[key].append(entry)
        return self._by_package.get(key, [])

    def _read_side(self, ecosystem: str) -> None:
        """Read one ecosystem's side file into the pending records (once)."""
        with self._lock:
            side = self._sides.get(ecosystem)
            if side is not None:
                self._pending.update(_pending_records(side.path, ecosystem, side.read()))
                del self._sides[ecosystem]

    def lowest_safe_version(
        self, name: str, version: str | Any, *, ecosystem: str = PYPI
    ) -> Any | None:
        """The lowest fixed version above `version` that no advisory for `name` affects: a
        packaging `Version` for PyPI, a `semver.Version` for npm (`str()` gives the text);
        None when there is none or `version` is not a version of the ecosystem."""
        scheme = scheme_for(ecosystem)
        current = version if not isinstance(version, str) else scheme.parse(version)
        if current is None:
            return None
        candidates = {
            fixed
            for advisory in self.advisories(name, ecosystem=ecosystem)
            for raw in advisory.fixed
            if (fixed := scheme.parse(raw)) is not None and fixed > current
        }
        for candidate in sorted(candidates):
            if not self.vulnerabilities(name, candidate, ecosystem=ecosystem):
                return candidate
        return None


def _pending_records(source: Path, ecosystem: str, packages: Any) -> dict[_Key, list[Any]]:
    """One ecosystem's package → records map, keyed for lookup."""
    scheme = SCHEMES[ecosystem]
    pending: dict[_Key, list[Any]] = {}
    for name, records in packages.items():
        if not isinstance(records, list):
            raise AdvisoryFileInvalid(source, f"{name} ({ecosystem}): not a list of records")
        pending[(scheme.ecosystem, scheme.package_key(str(name)))] = list(records)
    return pending


def _read_file(path: Path) -> list[Affected]:
    record = read_record(path)
    try:
        return parse_record(record)
    except (TypeError, KeyError, ValueError) as exc:
        raise AdvisoryFileInvalid(path, str(exc)) from exc
