"""`advisories sync`: fetch OSV's per-ecosystem archives, verify them, import them atomically.

OSV publishes every record of an ecosystem as `<base>/<ecosystem>/all.zip` (one
`<ID>.json` per record) in its public bucket; a bank points `advisories.sync_url` at its
internal mirror of the same layout. For each ecosystem asked for, the archive is downloaded
through httpx (timeouts, a size cap, a whole-download deadline) into a temporary folder, its
SHA-256 taken (and its MD5 checked against the `x-goog-hash` header Cloud Storage sends), and
verified: a zip whose central directory or any entry's CRC-32 is damaged,
an entry that is not JSON, or a record the importer would refuse, fails the whole sync.
Only when every archive passed is the index rewritten (new file beside the old, then
`rename`) and the manifest with it; a failed sync leaves the previous data as it was.

AdvisorySyncFailed(AdvisoryError)   one archive could not be fetched or verified
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import shutil
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from codefactory.advisories.classify import SkippedFiles
from codefactory.advisories.ecosystems import scheme_for
from codefactory.advisories.errors import AdvisoryError, AdvisoryImportFailed
from codefactory.advisories.importer import Collected, index_path, write_index, zip_records
from codefactory.advisories.manifest import EcosystemData
from codefactory.advisories.settings import AdvisorySettings

CHUNK_BYTES = 1 << 20


class AdvisorySyncFailed(AdvisoryError):
    """A sync was refused as a whole: `url` names the archive (or the base URL), `reason` why.
    The previous advisory data is untouched."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot sync advisories from {url}: {reason}")
        self.url = url
        self.reason = reason


@dataclass(frozen=True, kw_only=True)
class SyncReport:
    """What a sync fetched and wrote: per ecosystem the provenance recorded in the manifest,
    and `archive_bytes` downloaded; `digest` is the new index's SHA-256."""

    source: str
    ecosystems: dict[str, EcosystemData]
    archive_bytes: dict[str, int]
    digest: str
    index: str
    synced_at: str
    took_s: float


def archive_url(base: str, ecosystem: str) -> str:
    """`<base>/<ecosystem>/all.zip`, the layout of OSV's bucket."""
    return f"{base.rstrip('/')}/{ecosystem}/all.zip"


def sync_advisories(
    folder: Path,
    settings: AdvisorySettings,
    *,
    base_url: str | None = None,
    ecosystems: Sequence[str] = (),
) -> SyncReport:
    """Download, verify and import each ecosystem's archive from `base_url` (default
    `settings.sync_url`) into the index in `folder`, replacing those ecosystems and keeping
    the others. AdvisorySyncFailed when any archive cannot be fetched or verified; ValueError
    for an unsupported ecosystem."""
    base = (base_url or settings.sync_url).rstrip("/")
    if not base.startswith(("https://", "http://")):
        raise AdvisorySyncFailed(base, "not an http(s) URL")
    wanted = list(dict.fromkeys(scheme_for(e).ecosystem for e in ecosystems or settings.ecosystems))
    started = time.monotonic()
    folder.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(folder, settings)
    scratch = Path(tempfile.mkdtemp(dir=folder, prefix=".sync-"))
    try:
        with _client(settings) as client:
            fetched = {e: _fetch(client, archive_url(base, e), scratch, settings) for e in wanted}
        collected = {e: _verify(archive_url(base, e), fetched[e][0], e) for e in wanted}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    provenance = {
        e: EcosystemData(
            records=len(collected[e].kept.get(e, [])),
            withdrawn=collected[e].withdrawn.get(e, 0),
            other_ecosystems=collected[e].other_ecosystems,
            source=archive_url(base, e),
            sha256=fetched[e][1],
            synced_at=now,
            via="sync",
        )
        for e in wanted
    }
    kept = {e: collected[e].kept.get(e, []) for e in wanted}
    try:
        digest = write_index(folder, kept, provenance, now)
    except OSError as exc:  # a full disk: the rename never happened, the old index stands
        raise AdvisorySyncFailed(str(folder), f"cannot write the index: {exc}") from exc
    return SyncReport(
        source=base,
        ecosystems=provenance,
        archive_bytes={e: fetched[e][2] for e in wanted},
        digest=digest,
        index=str(index_path(folder)),
        synced_at=now,
        took_s=round(time.monotonic() - started, 3),
    )


def _remove_abandoned(folder: Path, settings: AdvisorySettings) -> None:
    """Downloads of a sync that was killed: older than any live sync can be."""
    cutoff = time.time() - 2 * settings.sync_deadline_s * max(1, len(settings.ecosystems))
    for scratch in folder.glob(".sync-*"):
        if scratch.is_dir() and scratch.stat().st_mtime < cutoff:
            shutil.rmtree(scratch, ignore_errors=True)


def _client(settings: AdvisorySettings) -> httpx.Client:
    # trust_env: a bank's HTTPS_PROXY / NO_PROXY and CA bundle (SSL_CERT_FILE) apply
    return httpx.Client(
        timeout=httpx.Timeout(settings.sync_timeout_s),
        follow_redirects=True,
        max_redirects=5,
        headers={"Accept": "application/zip"},
    )


def _fetch(
    client: httpx.Client, url: str, scratch: Path, settings: AdvisorySettings
) -> tuple[Path, str, int]:
    """Stream one archive to `scratch`: (path, SHA-256, bytes)."""
    target = scratch / (url.rsplit("/", 2)[-2] + ".zip")
    hasher = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False)
    expected_md5: bytes | None = None
    received = 0
    deadline = time.monotonic() + settings.sync_deadline_s
    try:
        with client.stream("GET", url) as response, target.open("wb") as out:
            if response.status_code != 200:
                raise AdvisorySyncFailed(url, f"HTTP {response.status_code}")
            expected_md5 = _goog_md5(url, response.headers)
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > settings.max_archive_bytes:
                raise AdvisorySyncFailed(url, _too_large(int(declared), settings))
            for chunk in response.iter_bytes(CHUNK_BYTES):
                received += len(chunk)
                if received > settings.max_archive_bytes:
                    raise AdvisorySyncFailed(url, _too_large(received, settings))
                if time.monotonic() > deadline:
                    raise AdvisorySyncFailed(
                        url, f"download exceeded {settings.sync_deadline_s:g} s"
                    )
                hasher.update(chunk)
                md5.update(chunk)
                out.write(chunk)
    except OSError as exc:
        raise AdvisorySyncFailed(url, f"cannot store the download: {exc}") from exc
    except httpx.TimeoutException as exc:
        raise AdvisorySyncFailed(url, f"timed out ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise AdvisorySyncFailed(url, f"{type(exc).__name__}: {exc}") from exc
    if expected_md5 is not None and md5.digest() != expected_md5:
        raise AdvisorySyncFailed(
            url, "MD5 differs from the x-goog-hash header (damaged in transit)"
        )
    return target, hasher.hexdigest(), received


def _goog_md5(url: str, headers: httpx.Headers) -> bytes | None:
    """The MD5 Google Cloud Storage (OSV's bucket) declares for the object in `x-goog-hash:
    crc32c=<b64>,md5=<b64>`; None when absent or the body is content-encoded."""
    if headers.get("content-encoding", "identity") != "identity":
        return None
    for part in headers.get_list("x-goog-hash", split_commas=True):
        kind, _, value = part.strip().partition("=")
        if kind == "md5":
            try:
                return base64.b64decode(value, validate=True)
            except binascii.Error as exc:
                raise AdvisorySyncFailed(url, f"malformed x-goog-hash header: {part}") from exc
    return None


def _too_large(size: int, settings: AdvisorySettings) -> str:
    return (
        f"archive of {size} bytes exceeds advisories.max_archive_bytes "
        f"({settings.max_archive_bytes})"
    )


def _verify(url: str, archive: Path, ecosystem: str) -> Collected:
    """Every entry's CRC and record checked, the ecosystem's records kept."""
    if not zipfile.is_zipfile(archive):
        raise AdvisorySyncFailed(url, "not a zip archive")
    collected = Collected(source=url)
    try:  # reading each entry checks its CRC-32 (zipfile raises BadZipFile on a mismatch)
        for name, record in zip_records(archive, SkippedFiles(), strict=True):
            collected.add(name, record, frozenset({ecosystem}))
    except AdvisoryImportFailed as exc:
        raise AdvisorySyncFailed(url, exc.reason) from exc
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise AdvisorySyncFailed(url, f"damaged zip: {exc}") from exc
    if not collected.kept.get(ecosystem) and not collected.withdrawn.get(ecosystem):
        # an empty or misplaced archive would otherwise wipe the ecosystem's data
        raise AdvisorySyncFailed(
            url, f"none of its {collected.records} records names a {ecosystem} package"
        )
    return collected
