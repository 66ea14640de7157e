"""The metadata written next to the advisory index: where each ecosystem's data came from,
when, how many records and their digest (`manifest.json`, format 2).

```json
{"format": 2, "index": ".../osv-index.json", "digest": "<sha256 of the index>",
 "written_at": "2026-11-29T20:00:00+00:00", "pypi_records": 2634, "npm_records": 4,
 "ecosystems": {"PyPI": {"records": 2634, "withdrawn": 28, "other_ecosystems": 0,
                         "source": "https://.../PyPI/all.zip", "sha256": "<archive digest>",
                         "synced_at": "2026-11-29T20:00:00+00:00", "via": "sync"}}}
```

Format 1 (before npm: `imported_at`, `source`, `pypi_records` at the top) is still read, as
PyPI data. Both files are written atomically: a temporary file beside the target, fsynced,
then renamed over it (POSIX `rename(2)` is atomic within a file system).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from codefactory.advisories.ecosystems import NPM, PYPI

INDEX_NAME = "osv-index.json"
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True, kw_only=True)
class EcosystemData:
    """Provenance of one ecosystem's records in the index: `records` kept (not withdrawn),
    `withdrawn` skipped, `other_ecosystems` records read from the source that name none of
    this ecosystem's packages, `source` the URL or path read, `sha256` its digest (the
    archive's bytes, or a folder's files), `synced_at` when (ISO 8601, UTC), `via` the
    command (`sync` or `import`)."""

    records: int
    withdrawn: int
    other_ecosystems: int
    source: str
    sha256: str
    synced_at: str
    via: str

    @classmethod
    def from_json(cls, body: Any) -> EcosystemData:
        """Read one entry of a manifest's `ecosystems`; ValueError when malformed."""
        if not isinstance(body, dict):
            raise ValueError("an `ecosystems` entry must be an object")
        try:
            return cls(
                records=int(body["records"]),
                withdrawn=int(body.get("withdrawn", 0)),
                other_ecosystems=int(body.get("other_ecosystems", 0)),
                source=str(body["source"]),
                sha256=str(body.get("sha256", "")),
                synced_at=str(body["synced_at"]),
                via=str(body.get("via", "import")),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"an `ecosystems` entry lacks {exc}") from exc

    @property
    def synced(self) -> datetime:
        """`synced_at` as an aware datetime."""
        return datetime.fromisoformat(self.synced_at)


def read_manifest(folder: Path) -> dict[str, EcosystemData]:
    """The per-ecosystem provenance in `folder/manifest.json`; empty when there is none.

    ValueError when the file exists but cannot be read: freshness must not be guessed.
    """
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: {' '.join(str(exc).split())}") from exc
    if not isinstance(body, dict):
        raise ValueError(f"{path}: not a JSON object")
    if "ecosystems" not in body:  # format 1: one PyPI import
        legacy = {
            "records": body.get("pypi_records"),
            "withdrawn": body.get("withdrawn", 0),
            "source": body.get("source"),
            "sha256": body.get("digest", ""),
            "synced_at": body.get("imported_at"),
        }
        return {PYPI: EcosystemData.from_json(legacy)}
    ecosystems = body["ecosystems"]
    if not isinstance(ecosystems, dict):
        raise ValueError(f"{path}: `ecosystems` must be an object")
    try:
        return {str(k): EcosystemData.from_json(v) for k, v in ecosystems.items()}
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def write_manifest(
    folder: Path, *, digest: str, written_at: str, ecosystems: dict[str, EcosystemData]
) -> dict[str, Any]:
    """Write `folder/manifest.json` atomically; returns what was written."""
    body: dict[str, Any] = {
        "format": 2,
        "index": str(folder / INDEX_NAME),
        "digest": digest,
        "written_at": written_at,
        "pypi_records": ecosystems[PYPI].records if PYPI in ecosystems else 0,
        "npm_records": ecosystems[NPM].records if NPM in ecosystems else 0,
        "ecosystems": {name: asdict(data) for name, data in sorted(ecosystems.items())},
    }
    write_atomically(folder / MANIFEST_NAME, json.dumps(body, indent=2).encode())
    return body


def write_atomically(target: Path, body: bytes) -> None:
    """Replace `target` with `body` so a reader sees the old file or the new, never a part."""
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
