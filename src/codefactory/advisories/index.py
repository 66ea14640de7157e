"""The index `advisories sync` and `import` write, and how it is read back.

`osv-index.json` (format 2) holds PyPI's records inline, under `packages`, where format 1 had
them, and names one side file per other ecosystem:

```json
{"format": 2, "packages": {"requests": [<record>, ...]},
 "ecosystems": {"npm": {"file": "osv-index.npm.66bd550866ca.json", "sha256": "66bd5508..."}}}
```

A side file (`{"packages": {"lodash": [<record>, ...]}}`) is content-addressed: its name
carries its SHA-256, which the main index records, so the main index's own digest changes
with every ecosystem's data and renaming the main index over the old one is the single
commit point of a sync (side files are written first; the ones no longer named are removed
after). OSV's npm archive holds a few hundred thousand records: a side file is read only
when an npm package is first judged, so commands that judge PyPI alone never parse it. A
reader opens the side files when it opens the index and keeps them open, so a later sync
that removes them cannot pull the data from under a long-running factory.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from codefactory.advisories.ecosystems import PYPI, SCHEMES
from codefactory.advisories.errors import AdvisoryFileInvalid
from codefactory.advisories.manifest import INDEX_NAME, write_atomically

Packages = dict[str, list[Any]]
"""Package key → the OSV records (stripped) that affect it."""


@dataclass
class SideFile:
    """One ecosystem's records in their own file, read on first use."""

    ecosystem: str
    path: Path
    sha256: str
    handle: IO[bytes] | None = None

    def reference(self) -> dict[str, str]:
        """How the main index names it."""
        return {"file": self.path.name, "sha256": self.sha256}

    def read(self) -> Packages:
        """Its packages, after checking its SHA-256; AdvisoryFileInvalid when it is missing,
        damaged or not a side file."""
        try:
            if self.handle is None:
                raise OSError("not opened")
            self.handle.seek(0)
            raw = self.handle.read()
        except OSError as exc:
            raise AdvisoryFileInvalid(self.path, f"cannot read: {exc}") from exc
        finally:
            self.close()
        if hashlib.sha256(raw).hexdigest() != self.sha256:
            raise AdvisoryFileInvalid(self.path, "its SHA-256 is not the one the index records")
        try:
            packages = json.loads(raw)["packages"]
        except (ValueError, KeyError, TypeError) as exc:
            raise AdvisoryFileInvalid(self.path, f"not an index side file: {exc}") from exc
        if not isinstance(packages, dict):
            raise AdvisoryFileInvalid(self.path, "`packages` must be an object")
        return packages

    def close(self) -> None:
        """Release the open file (done by `read`)."""
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def __del__(self) -> None:
        # a database dropped before judging this ecosystem still releases the file
        self.close()


@dataclass
class OpenIndex:
    """An index as read: its digest, PyPI's packages, and the other ecosystems' side files
    (opened, not read)."""

    digest: str
    pypi: Packages
    sides: dict[str, SideFile]


def open_index(index: Path) -> OpenIndex:
    """Read the main index and open its side files; AdvisoryFileInvalid naming the file when
    either is unreadable or not an index."""
    try:
        raw = index.read_bytes()
        body = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise AdvisoryFileInvalid(index, " ".join(str(exc).split())) from exc
    if not isinstance(body, dict) or not isinstance(body.get("packages"), dict):
        raise AdvisoryFileInvalid(index, "not an index written by `advisories import`")
    others = body.get("ecosystems", {})
    if not isinstance(others, dict):
        raise AdvisoryFileInvalid(index, "`ecosystems` must be an object")
    sides = {}
    for ecosystem, reference in others.items():
        sides[ecosystem] = _side(index, ecosystem, reference)
    return OpenIndex(digest=hashlib.sha256(raw).hexdigest(), pypi=body["packages"], sides=sides)


def _side(index: Path, ecosystem: str, reference: Any) -> SideFile:
    if ecosystem not in SCHEMES or ecosystem == PYPI:
        raise AdvisoryFileInvalid(index, f"unexpected ecosystem section {ecosystem!r}")
    if not isinstance(reference, dict) or not isinstance(reference.get("file"), str):
        raise AdvisoryFileInvalid(index, f"{ecosystem}: not a side file reference")
    path = index.parent / Path(reference["file"]).name
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise AdvisoryFileInvalid(path, f"named by {index.name} but unreadable: {exc}") from exc
    return SideFile(
        ecosystem=ecosystem, path=path, sha256=str(reference.get("sha256")), handle=handle
    )


def current_sections(folder: Path) -> dict[str, Packages | SideFile]:
    """The sections of the index in `folder`, to keep the ecosystems a sync or import does
    not replace (side files are carried over by reference, not read). Empty when there is no
    readable index: it is then replaced as a whole."""
    try:
        opened = open_index(folder / INDEX_NAME)
    except AdvisoryFileInvalid:
        return {}
    for side in opened.sides.values():
        side.close()
    sections: dict[str, Packages | SideFile] = dict(opened.sides)
    if opened.pypi:
        sections[PYPI] = opened.pypi
    return sections


def write_index(folder: Path, sections: dict[str, Packages | SideFile]) -> str:
    """Write side files, then the main index (atomically, the commit point), then remove the
    side files it no longer names; returns the main index's SHA-256."""
    folder.mkdir(parents=True, exist_ok=True)
    references: dict[str, dict[str, str]] = {}
    for ecosystem, section in sorted(sections.items()):
        if ecosystem == PYPI:
            continue
        side = section if isinstance(section, SideFile) else _write_side(folder, ecosystem, section)
        references[ecosystem] = side.reference()
    pypi = sections.get(PYPI, {})
    layout = {
        "format": 2,
        "packages": pypi if isinstance(pypi, dict) else {},
        "ecosystems": references,
    }
    body = json.dumps(layout, sort_keys=True).encode()
    write_atomically(folder / INDEX_NAME, body)
    named = {reference["file"] for reference in references.values()}
    for stale in folder.glob("osv-index.*.*.json"):
        if stale.name not in named:
            stale.unlink(missing_ok=True)  # open readers keep their handle on it
    return hashlib.sha256(body).hexdigest()


def _write_side(folder: Path, ecosystem: str, packages: Packages) -> SideFile:
    body = json.dumps({"packages": packages}, sort_keys=True).encode()
    digest = hashlib.sha256(body).hexdigest()
    path = folder / f"osv-index.{ecosystem}.{digest[:12]}.json"
    if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
        write_atomically(path, body)
    return SideFile(ecosystem=ecosystem, path=path, sha256=digest)
