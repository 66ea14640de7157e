"""The package's manifest (what it held when built) and the signed verdicts kept beside it.

`manifest.json` is RFC 8785 canonical JSON: `{"files": {"<path>": "sha256:<hex>", …}}` for
every file the builder wrote. The package digest a reviewer signs is `sha256:<hex>` of those
bytes; it stays the same when verdicts are added under `reviews/`, and a package whose files
no longer match their manifest, or that holds a file the manifest does not list (other than
what is added after the build: the issuer's `attestation.dsse.json`, `approval.json` and
`reviews/`), has no digest (`PackageAltered`), so nobody approves it.

A verdict is kept as `reviews/<n>-<verdict>.json` (the statement exactly as signed), `.json.sig`
(the SSH signature) and `.allowed_signers` (the one line that verifies it), so an outsider runs
`ssh-keygen -Y verify -f reviews/1-approve.allowed_signers -I <reviewer> -n codefactory-review
-s reviews/1-approve.json.sig < reviews/1-approve.json`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from codefactory.audit.canonical import canonical_json
from codefactory.package.errors import PackageError

MANIFEST = "manifest.json"
REVIEWS = "reviews"
AFTER_BUILD = frozenset({"attestation.dsse.json", "approval.json"})
"""Files written into a package after its manifest (the issuer's attestation, the hand-off)."""


class PackageAltered(PackageError):
    """The package folder no longer holds what its manifest lists (or has no manifest)."""

    def __init__(self, directory: Path, problem: str) -> None:
        super().__init__(f"the change package {directory} cannot be approved: {problem}")
        self.directory = directory
        self.problem = problem


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_digest(data: bytes) -> str:
    """`sha256:<hex>` of `data`: how the manifest names a file, and the package digest of
    the manifest's own bytes."""
    return _sha256(data)


def manifest_files(folder: Path, body: bytes) -> dict[str, str]:
    """The `files` of the manifest bytes `body` (path → `sha256:<hex>`); `PackageAltered`
    when they are not a manifest."""
    try:
        files = json.loads(body)["files"]
    except (ValueError, KeyError, TypeError) as err:
        raise PackageAltered(folder, f"no readable {MANIFEST}: {err}") from err
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        raise PackageAltered(folder, f"{MANIFEST} lists no files")
    return files


def check_file(folder: Path, files: Mapping[str, str], name: str, data: bytes) -> None:
    """`PackageAltered` unless `data` (the bytes read of `name`, a path in the package) hash
    to the digest `files` (a verified manifest's) lists for it."""
    expected = files.get(name)
    if expected is None:
        raise PackageAltered(folder, f"{name} was added after the package was built")
    if _sha256(data) != expected:
        raise PackageAltered(folder, f"{name} is not as it was built")


def write_manifest(folder: Path) -> str:
    """Write `manifest.json` listing every file in `folder`; returns the package digest."""
    files = {
        path.relative_to(folder).as_posix(): _sha256(path.read_bytes())
        for path in sorted(folder.rglob("*"))
        if path.is_file()
        and path.name != MANIFEST
        and path.relative_to(folder).as_posix() not in AFTER_BUILD
    }
    body = canonical_json({"files": files})
    (folder / MANIFEST).write_bytes(body)
    return _sha256(body)


def package_digest(folder: Path) -> str:
    """The digest of the package as built; `PackageAltered` when the manifest is missing or a
    file it lists is gone or changed."""
    try:
        body = (folder / MANIFEST).read_bytes()
    except OSError as err:
        raise PackageAltered(folder, f"no readable {MANIFEST}: {err}") from err
    files = manifest_files(folder, body)
    for name, digest in files.items():
        path = folder / name
        if not path.is_file() or _sha256(path.read_bytes()) != digest:
            raise PackageAltered(folder, f"{name} is not as it was built")
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_dir() or name == MANIFEST or name in files or name in AFTER_BUILD:
            continue
        if name.startswith(REVIEWS + "/"):
            continue
        raise PackageAltered(folder, f"{name} was added after the package was built")
    return _sha256(body)


def keep_verdict(
    folder: Path, *, verdict: str, body: bytes, signature: str, allowed_signers_line: str
) -> Path:
    """Write the signed statement, its signature and its allowed-signers line under
    `reviews/`, numbered after the ones already there; returns the statement's path."""
    reviews = folder / REVIEWS
    reviews.mkdir(exist_ok=True)
    number = 1 + len(list(reviews.glob("*.json")))
    statement = reviews / f"{number}-{verdict}.json"
    statement.write_bytes(body)
    statement.with_name(statement.name + ".sig").write_text(signature, encoding="ascii")
    statement.with_suffix(".allowed_signers").write_text(allowed_signers_line + "\n")
    return statement
