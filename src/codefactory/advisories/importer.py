"""`advisories import`: a folder of OSV files or an OSV zip export into the local database.

Banks mirror OSV's `PyPI/all.zip` (or the PyPA advisory repository) on a schedule and import
each snapshot. An import is all or nothing: every record is read and validated first, and a
malformed one refuses the import, naming it; only then is the index written, atomically,
next to a manifest: the PyPI records stripped to what matching needs, grouped by package so
the factory parses a package's records only when it judges that package (a whole-ecosystem
export loads in milliseconds). The factory uses the index by default once it exists.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from packaging.utils import canonicalize_name

from codefactory.advisories.errors import AdvisoryFileInvalid, AdvisoryImportFailed
from codefactory.advisories.osv import YAML_LOADER, parse_record, read_record

INDEX_NAME = "osv-index.json"
MANIFEST_NAME = "manifest.json"
SUFFIXES = (".json", ".yaml", ".yml")
MAX_ENTRY_BYTES = 20_000_000
"""A zip entry larger than this uncompressed is refused (a zip bomb, not an advisory)."""
KEPT_FIELDS = ("id", "aliases", "summary", "severity", "withdrawn")


@dataclass(frozen=True, kw_only=True)
class ImportReport:
    """What an import read and wrote."""

    source: str
    records: int
    pypi_records: int
    withdrawn: int
    digest: str
    index: str
    imported_at: str


def index_path(folder: Path) -> Path:
    """Where the imported index lives inside the data folder's advisory folder."""
    return folder / INDEX_NAME


def import_advisories(source: Path, folder: Path) -> ImportReport:
    """Validate every record of `source` (folder or zip), then replace the index in `folder`."""
    kept: list[dict[str, Any]] = []
    seen = withdrawn = 0
    for name, record in _records(source):
        seen += 1
        try:
            entries = parse_record(record)
        except (TypeError, KeyError, ValueError) as exc:
            raise AdvisoryImportFailed(str(source), f"{name}: {exc}") from exc
        if record.get("withdrawn"):
            withdrawn += 1
        elif entries:
            kept.append(_stripped(record))
    if not seen:
        raise AdvisoryImportFailed(str(source), "no OSV records (*.json, *.yaml) found")
    body = json.dumps({"format": 1, "packages": _by_package(kept)}, sort_keys=True).encode()
    report = ImportReport(
        source=str(source),
        records=seen,
        pypi_records=len(kept),
        withdrawn=withdrawn,
        digest=hashlib.sha256(body).hexdigest(),
        index=str(index_path(folder)),
        imported_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    folder.mkdir(parents=True, exist_ok=True)
    _write_atomically(index_path(folder), body)
    _write_atomically(folder / MANIFEST_NAME, json.dumps(asdict(report), indent=2).encode())
    return report


def _records(source: Path) -> Iterator[tuple[str, Any]]:
    if source.is_dir():
        for path in sorted(source.rglob("*")):
            if path.suffix.lower() in SUFFIXES and path.is_file():
                try:
                    yield str(path.relative_to(source)), read_record(path)
                except AdvisoryFileInvalid as exc:
                    raise AdvisoryImportFailed(str(source), f"{path.name}: {exc.reason}") from exc
    elif zipfile.is_zipfile(source):
        yield from _zip_records(source)
    elif source.exists():
        raise AdvisoryImportFailed(str(source), "not a folder of OSV files nor a zip export")
    else:
        raise AdvisoryImportFailed(str(source), "no such file or folder")


def _zip_records(source: Path) -> Iterator[tuple[str, Any]]:
    with zipfile.ZipFile(source) as archive:
        for info in sorted(archive.infolist(), key=lambda i: i.filename):
            suffix = PurePosixPath(info.filename).suffix.lower()
            if info.is_dir() or suffix not in SUFFIXES:
                continue
            if info.file_size > MAX_ENTRY_BYTES:
                raise AdvisoryImportFailed(str(source), f"{info.filename}: entry too large")
            try:
                text = archive.read(info).decode("utf-8")
                record = json.loads(text) if suffix == ".json" else yaml.load(text, YAML_LOADER)
            except (ValueError, yaml.YAMLError, zipfile.BadZipFile) as exc:
                reason = " ".join(str(exc).split()) or repr(exc)
                raise AdvisoryImportFailed(str(source), f"{info.filename}: {reason}") from exc
            yield info.filename, record


def _by_package(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Records under each PEP 503 name they affect, sorted by id (an index loads lazily)."""
    packages: dict[str, list[dict[str, Any]]] = {}
    for record in sorted(records, key=lambda r: str(r["id"])):
        names = {canonicalize_name(str(block["package"]["name"])) for block in record["affected"]}
        for name in sorted(names):
            packages.setdefault(name, []).append(record)
    return packages


def _stripped(record: dict[str, Any]) -> dict[str, Any]:
    """The fields matching reads: the summary (else the details' first line), PyPI `affected`."""
    kept = {key: record[key] for key in KEPT_FIELDS if key in record}
    if not kept.get("summary"):
        details = str(record.get("details") or "").strip().splitlines()
        kept["summary"] = details[0] if details else ""
    kept["affected"] = [
        {key: block[key] for key in ("package", "ranges", "versions") if key in block}
        for block in record.get("affected", [])
        if block.get("package", {}).get("ecosystem") == "PyPI"
    ]
    return kept


def _write_atomically(target: Path, body: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(body)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def default_advisories(data_dir: Path, shipped: Path) -> Path:
    """The imported index under `data_dir` when there is one, else the shipped advisories."""
    imported = index_path(data_dir / "advisories")
    return imported if imported.is_file() else shipped
