"""`advisories import`: a folder of OSV files or an OSV zip export into the local database.

Banks mirror OSV's `PyPI/all.zip` (or a checkout of the PyPA advisory database) on a schedule
and import each snapshot. An import is all or nothing: every record is read and validated
first, and a malformed one refuses the import, naming it; only then is the index written,
atomically, next to a manifest (`manifest.py`): the PyPI and npm records stripped to what
matching needs, grouped by ecosystem and package so the factory parses a package's records
only when it judges that package. The factory uses the index by default once it exists.

An import replaces the ecosystems it holds records for and keeps the others (an npm sync
survives an import of the PyPA checkout). In a checkout, files that are not advisories are
skipped and counted by kind (`classify.py`); a file that looks like one but is malformed
refuses the import.
"""

from __future__ import annotations

import fcntl
import hashlib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from codefactory.advisories.classify import SkippedFiles, advisory_candidate, parse_text
from codefactory.advisories.ecosystems import NPM, PYPI, SCHEMES
from codefactory.advisories.errors import AdvisoryImportFailed
from codefactory.advisories.index import current_sections
from codefactory.advisories.index import write_index as write_sections
from codefactory.advisories.manifest import (
    INDEX_NAME,
    MANIFEST_NAME,
    EcosystemData,
    read_manifest,
    write_manifest,
)
from codefactory.advisories.records import check_record

__all__ = ["INDEX_NAME", "MANIFEST_NAME", "ImportReport", "import_advisories", "index_path"]

SUFFIXES = (".json", ".yaml", ".yml")
MAX_ENTRY_BYTES = 20_000_000
"""A zip entry larger than this uncompressed is refused (a zip bomb, not an advisory)."""
KEPT_FIELDS = ("id", "aliases", "summary", "severity", "withdrawn")


@dataclass(frozen=True, kw_only=True)
class ImportReport:
    """What an import read and wrote: `records` OSV records read, of which `pypi_records`
    and `npm_records` kept, `withdrawn` and `other_ecosystems` (no PyPI or npm package)
    skipped; `skipped` counts the files that were not advisories, by kind; `digest` is the
    new index's SHA-256."""

    source: str
    records: int
    pypi_records: int
    withdrawn: int
    digest: str
    index: str
    imported_at: str
    npm_records: int = 0
    other_ecosystems: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass
class Collected:
    """Records read from one source, validated and sorted by ecosystem."""

    source: str
    records: int = 0
    withdrawn: dict[str, int] = field(default_factory=dict)
    other_ecosystems: int = 0
    kept: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, name: str, record: Any, wanted: frozenset[str]) -> None:
        """Validate one record (AdvisoryImportFailed naming `name` when malformed) and keep
        its blocks of each wanted ecosystem."""
        self.records += 1
        try:
            named = check_record(record)
            ecosystems = (named or _ecosystems(record)) & wanted
        except (TypeError, KeyError, ValueError) as exc:
            raise AdvisoryImportFailed(self.source, f"{name}: {exc}") from exc
        if not ecosystems:
            self.other_ecosystems += 1
        for ecosystem in sorted(ecosystems):
            if record.get("withdrawn"):
                self.withdrawn[ecosystem] = self.withdrawn.get(ecosystem, 0) + 1
            else:
                self.kept.setdefault(ecosystem, []).append(_stripped(record, ecosystem))


def index_path(folder: Path) -> Path:
    """Where the imported index lives inside the data folder's advisory folder."""
    return folder / INDEX_NAME


def import_advisories(source: Path, folder: Path) -> ImportReport:
    """Validate every record of `source` (folder or zip), then replace, in `folder`'s index,
    the ecosystems `source` holds records for. AdvisoryImportFailed when `source` is
    missing, holds no PyPI or npm record, or holds a malformed one; nothing is written then."""
    collected = Collected(source=str(source))
    skipped = SkippedFiles()
    hasher = hashlib.sha256()
    for name, record in _records(source, skipped, hasher):
        collected.add(name, record, frozenset(SCHEMES))
    if not collected.records:
        found = f" ({skipped.describe()} skipped)" if skipped.counts else ""
        raise AdvisoryImportFailed(str(source), f"no OSV records (*.json, *.yaml) found{found}")
    if not collected.kept and not collected.withdrawn:
        raise AdvisoryImportFailed(
            str(source), f"none of its {collected.records} records names a PyPI or npm package"
        )
    now = datetime.now(UTC).isoformat(timespec="seconds")
    provenance = {
        ecosystem: EcosystemData(
            records=len(collected.kept.get(ecosystem, [])),
            withdrawn=collected.withdrawn.get(ecosystem, 0),
            other_ecosystems=collected.other_ecosystems,
            source=str(source),
            sha256=hasher.hexdigest(),
            synced_at=now,
            via="import",
        )
        for ecosystem in sorted(set(collected.kept) | set(collected.withdrawn))
    }
    try:
        digest = write_index(folder, collected.kept, provenance, now)
    except OSError as exc:  # the rename never happened: the previous index stands
        raise AdvisoryImportFailed(str(source), f"cannot write the index: {exc}") from exc
    return ImportReport(
        source=str(source),
        records=collected.records,
        pypi_records=len(collected.kept.get(PYPI, [])),
        npm_records=len(collected.kept.get(NPM, [])),
        withdrawn=sum(collected.withdrawn.values()),
        other_ecosystems=collected.other_ecosystems,
        skipped=dict(skipped.counts),
        digest=digest,
        index=str(index_path(folder)),
        imported_at=now,
    )


def write_index(
    folder: Path,
    kept: dict[str, list[dict[str, Any]]],
    provenance: dict[str, EcosystemData],
    written_at: str,
) -> str:
    """Replace the ecosystems in `provenance` with `kept`'s records, keep the others of the
    current index (`index.py`), and write index then manifest atomically; returns the index's
    SHA-256. A damaged index or manifest is not merged from: only the new data is kept.
    Concurrent writers (two syncs, a sync and an import) take turns (`flock` on
    `folder/.lock`), so neither drops the other's ecosystems nor its side file."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        sections = current_sections(folder)
        try:
            previous = {k: v for k, v in read_manifest(folder).items() if k in sections}
        except ValueError:
            sections, previous = {}, {}
        for ecosystem in provenance:
            sections[ecosystem] = _by_package(kept.get(ecosystem, []), ecosystem)
            previous[ecosystem] = provenance[ecosystem]
        digest = write_sections(folder, sections)
        write_manifest(folder, digest=digest, written_at=written_at, ecosystems=previous)
    return digest


def _ecosystems(record: dict[str, Any]) -> set[str]:
    """The supported ecosystems a (validated) record names in `affected`."""
    return {
        str(block["package"]["ecosystem"])
        for block in record.get("affected") or []
        if str(block["package"].get("ecosystem")) in SCHEMES
    }


def _records(source: Path, skipped: SkippedFiles, hasher: Any) -> Iterator[tuple[str, Any]]:
    if source.is_dir():
        yield from _folder_records(source, skipped, hasher)
    elif zipfile.is_zipfile(source):
        hasher.update(source.read_bytes())
        yield from zip_records(source, skipped, strict=False)
    elif source.exists():
        raise AdvisoryImportFailed(str(source), "not a folder of OSV files nor a zip export")
    else:
        raise AdvisoryImportFailed(str(source), "no such file or folder")


def _folder_records(source: Path, skipped: SkippedFiles, hasher: Any) -> Iterator[tuple[str, Any]]:
    for path in sorted(source.rglob("*")):
        if not path.is_file():
            continue
        name = path.relative_to(source).as_posix()
        if not advisory_candidate(name, skipped):
            continue
        try:
            body = path.read_bytes()
        except OSError as exc:
            raise AdvisoryImportFailed(str(source), f"{name}: {exc}") from exc
        record = _parse(source, name, body, skipped, strict=False)
        if record is not None:
            hasher.update(name.encode() + b"\0" + body)
            yield name, record


def zip_records(source: Path, skipped: SkippedFiles, *, strict: bool) -> Iterator[tuple[str, Any]]:
    """The records of a zip export, by entry name. `strict` (an OSV bucket archive): every
    entry must be an OSV JSON record; otherwise (a zipped checkout) other files are skipped
    and counted. A CRC mismatch, an oversized entry or a malformed record raises
    AdvisoryImportFailed naming the entry."""
    with zipfile.ZipFile(source) as archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            if info.is_dir():
                continue
            if strict and PurePosixPath(info.filename).suffix.lower() != ".json":
                raise AdvisoryImportFailed(str(source), f"{info.filename}: not an OSV JSON record")
            if not strict and not advisory_candidate(info.filename, skipped):
                continue
            if info.file_size > MAX_ENTRY_BYTES:
                raise AdvisoryImportFailed(str(source), f"{info.filename}: entry too large")
            try:
                body = archive.read(info)  # checks the entry's CRC-32
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise AdvisoryImportFailed(str(source), f"{info.filename}: {exc}") from exc
            record = _parse(source, info.filename, body, skipped, strict=strict)
            if record is not None:
                yield info.filename, record


def _parse(
    source: Path, name: str, body: bytes, skipped: SkippedFiles, *, strict: bool
) -> Any | None:
    """The record in one candidate file; None (counted) when it is data but not OSV."""
    try:
        record = parse_text(name, body)
    except ValueError as exc:
        raise AdvisoryImportFailed(str(source), f"{name}: {exc}") from exc
    if strict or skipped.looks_like_advisory(name, record):
        return record
    return None


def _by_package(records: list[dict[str, Any]], ecosystem: str) -> dict[str, list[dict[str, Any]]]:
    """Records under each package key they affect, sorted by id (an index loads lazily)."""
    key = SCHEMES[ecosystem].package_key
    packages: dict[str, list[dict[str, Any]]] = {}
    for record in sorted(records, key=lambda r: str(r["id"])):
        names = {key(str(block["package"]["name"])) for block in record["affected"]}
        for name in sorted(names):
            packages.setdefault(name, []).append(record)
    return packages


def _stripped(record: dict[str, Any], ecosystem: str) -> dict[str, Any]:
    """The fields matching reads: the summary (else the details' first line), and the
    `affected` entries of one ecosystem."""
    kept = {key: record[key] for key in KEPT_FIELDS if key in record}
    if not kept.get("summary"):
        details = str(record.get("details") or "").strip().splitlines()
        kept["summary"] = details[0] if details else ""
    kept["affected"] = [
        {key: block[key] for key in ("package", "ranges", "versions") if key in block}
        for block in record.get("affected") or []
        if block.get("package", {}).get("ecosystem") == ecosystem
    ]
    return kept


def default_advisories(data_dir: Path, shipped: Path) -> Path:
    """The index `advisories sync` or `import` wrote under `data_dir` when there is one, else
    the shipped advisories."""
    imported = index_path(data_dir / "advisories")
    return imported if imported.is_file() else shipped
