"""The run page shows only package bytes it has verified against what was signed.

Someone who can write the data folder can rewrite a package file, but not the issuer's
attestation (`attestation.dsse.json`, pinned issuer key) that names the digest of
`manifest.json`, which lists each file's SHA-256. So, at every render:

1. the attestation is verified (`SignedFacts.attested`: pinned key, this run);
2. `manifest.json` is read once and must hash to the attested digest;
3. each file the page shows is read once, and those very bytes must hash to the digest the
   manifest lists for it (`package.manifest.check_file`): what is shown is what was hashed;
4. for a run waiting for a verdict, the run's whole signed facts are established
   (`SignedFacts.establish`: the agent's provenance and commit signature, the branch, the
   parties) as the review desk does before a verdict.

Anything that fails is a problem the page shows in a blocking banner ("this package does not
match what the agent signed: …") with no verdict form; a file that fails is not shown.

The folder is opened once (`opened_package`) and every file is read beneath that descriptor
with `sandbox.beneath.read_beneath`: no link is followed at any component, a FIFO or device
is refused without blocking (opened `O_PATH`, reopened `O_NONBLOCK` only when regular).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from codefactory.domain import Run, TriggerEvent
from codefactory.package.attestation import FILE_NAME as ATTESTATION
from codefactory.package.manifest import (
    MANIFEST,
    PackageAltered,
    check_file,
    file_digest,
    manifest_files,
)
from codefactory.review.errors import FactsRefused
from codefactory.review.signed_facts import SignedFacts
from codefactory.sandbox.beneath import (
    BeneathError,
    FileTooLarge,
    LinkInPath,
    list_beneath,
    read_beneath,
)
from codefactory.web.dashboard.package_files import MAX_BYTES, Missing

MAX_EVIDENCE_FILES = 50
NO_PACKAGE = Missing("the run has no package")
UNVERIFIED = Missing("not shown: the package's manifest could not be verified")


@contextmanager
def opened_package(folder: str) -> Iterator[Path | None]:
    """`folder` opened once (`O_PATH`, the folder itself may be reached through a link, as
    `sandbox.beneath` allows of a root), named as `/proc/self/fd/<n>` so that every read
    beneath it resolves from that very folder; None when there is no such folder."""
    try:
        fd = os.open(folder, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        yield None
        return
    try:
        yield Path(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


@dataclass(kw_only=True)
class PackageReading:
    """Reads package files beneath `root`, each checked against the verified manifest
    `files`; collects the problems found (what does not match what was signed)."""

    root: Path | None
    folder: Path
    """The package folder as the run names it (for messages only)."""
    files: dict[str, str] | None = None
    """The manifest's files once the manifest is verified; None: nothing is shown."""
    verified: dict[str, bytes] = field(default_factory=dict)
    """Files verified otherwise than by the manifest (the attestation, the manifest itself)."""
    problems: list[str] = field(default_factory=list)

    def raw(self, name: str) -> bytes | Missing:
        """The bytes of `name`, unverified (only `verify` uses it), or `Missing`."""
        if self.root is None:
            return NO_PACKAGE
        try:
            return read_beneath(self.root, name, max_bytes=MAX_BYTES)
        except FileTooLarge as err:
            return Missing(f"in the package, but too large to show ({err.size} bytes)")
        except LinkInPath:
            return self._problem(f"{name}: a folder on its path is a symbolic link")
        except BeneathError as err:
            if err.kind == "missing":
                if self.files is not None and name in self.files:
                    self.problems.append(f"{name} is listed in the manifest but missing")
                    return Missing("not in the package, though its manifest lists it")
                return Missing("not in the package")
            return self._problem(f"{name} is a {err.kind}, not a regular file")
        except OSError as err:
            return self._problem(f"{name} could not be read ({err.strerror})")

    def read(self, name: str) -> bytes | Missing:
        """The bytes of `name`, shown only when they hash to the manifest's digest."""
        if self.files is None:
            return NO_PACKAGE if self.root is None else UNVERIFIED
        if name in self.verified:
            return self.verified[name]
        data = self.raw(name)
        if isinstance(data, Missing):
            return data
        try:
            check_file(self.folder, self.files, name, data)
        except PackageAltered as err:
            rewritten = (
                ": the package was rewritten after it was built" if name in self.files else ""
            )
            return self._problem(err.problem + rewritten)
        return data

    def evidence(self) -> tuple[tuple[str, str | Missing], ...] | Missing:
        """The `evidence/` files by name, with their verified text."""
        if self.files is None or self.root is None:
            return NO_PACKAGE if self.root is None else UNVERIFIED
        listed = sorted(n for n in self.files if n.startswith("evidence/"))
        try:
            entries = list_beneath(self.root, "evidence")
        except LinkInPath:
            return self._problem("evidence/ is a symbolic link")
        except BeneathError as err:
            if err.kind == "missing" and not listed:
                return Missing("not in the package")
            what = "missing" if err.kind == "missing" else f"a {err.kind}, not a folder"
            return self._problem(f"evidence/ is {what}")
        found = [f"evidence/{name}" for name, _ in entries]
        for name in listed:
            if name not in found:
                self._problem(f"{name} is listed in the manifest but missing")
        return tuple(
            (path.removeprefix("evidence/"), _text(self.read(path)))
            for path in found[:MAX_EVIDENCE_FILES]
        )

    def _problem(self, problem: str) -> Missing:
        self.problems.append(problem)
        return Missing(f"not shown: {problem}")


def _text(data: bytes | Missing) -> str | Missing:
    return data if isinstance(data, Missing) else data.decode("utf-8", "replace")


@dataclass(frozen=True, kw_only=True)
class PackageCheck:
    """What the page verified of the package."""

    digest: str
    """The package digest (`sha256:<hex>` of `manifest.json`) the page verified and shows;
    "" when it could not be verified."""
    problems: tuple[str, ...]
    """Why the package does not match what the agent and the issuer signed (none: it does)."""


def verify(
    reading: PackageReading,
    run: Run,
    facts: SignedFacts,
    *,
    trigger: TriggerEvent | None,
    awaited: bool,
) -> str:
    """Trust the manifest in `reading` once it hashes to the issuer's attested digest (and,
    for a run whose verdict is `awaited`, once its whole signed facts hold); returns that
    digest ("" when it could not), the failures in `reading.problems`."""
    if not run.package_dir:
        if awaited:
            reading.problems.append("the run has no change package")
        return ""
    for name in (ATTESTATION, MANIFEST):  # a link or FIFO here is refused before anyone reads
        if isinstance(reading.raw(name), Missing):
            if not reading.problems:
                reading.problems.append(f"{name} is not in the package")
            return ""
    try:
        attested = facts.attested(run)
    except FactsRefused as err:
        reading.problems.append(err.reason)
        return ""
    if not _manifest_holds(reading, attested.package_digest, attested.digest):
        return ""
    if awaited:
        try:
            established = facts.establish(run, trigger)
        except FactsRefused as err:
            reading.problems.append(err.reason)
            return ""
        if established.package_digest != attested.package_digest:
            reading.problems.append("the package changed while the page was made")
    return attested.package_digest


def _manifest_holds(reading: PackageReading, digest: str, attestation_digest: str) -> bool:
    body, envelope = reading.raw(MANIFEST), reading.raw(ATTESTATION)
    if isinstance(body, Missing) or isinstance(envelope, Missing):
        reading.problems.append(f"{MANIFEST} or {ATTESTATION} could not be read")
        return False
    if file_digest(envelope) != attestation_digest:
        reading.problems.append(f"{ATTESTATION} changed while the page was made")
        return False
    if file_digest(body) != digest:
        reading.problems.append(
            f"{MANIFEST} hashes to {file_digest(body)}, but the issuer attested {digest}: "
            "the package was rewritten after it was built"
        )
        return False
    try:
        reading.files = manifest_files(reading.folder, body)
    except PackageAltered as err:
        reading.problems.append(err.problem)
        return False
    reading.verified = {MANIFEST: body, ATTESTATION: envelope}
    return True
