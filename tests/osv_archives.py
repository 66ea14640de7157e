"""OSV archives as OSV's bucket serves them (`<ecosystem>/all.zip`, one `<ID>.json` per
record), and a loopback HTTP server to serve them from.

`PyPI/all.zip` is built from the real PyPA records in `../shared/fixtures/osv-pypi/vulns`
(YAML converted to the JSON the bucket holds; cached under ~/.cache/codefactory-tests).
The npm records are real GitHub-reviewed and OpenSSF malicious-package advisories, written
field for field as osv.dev publishes them (SEMVER ranges, `database_specific`, a RubyGems
entry beside the npm ones).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import SHARED_FIXTURES

CACHE = Path.home() / ".cache" / "codefactory-tests" / "osv-archives"
PYPA_VULNS = SHARED_FIXTURES / "osv-pypi" / "vulns"


def _json_value(value: Any) -> Any:
    """YAML timestamps become OSV's RFC 3339 strings (`2024-04-11T15:15:00Z`)."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def pypi_archive() -> Path:
    """`all.zip` of every PyPA record, as JSON; built once per fixture version, then cached."""
    files = sorted(PYPA_VULNS.rglob("*.yaml"))
    key = hashlib.sha256("\n".join(f"{p.name}:{p.stat().st_size}" for p in files).encode())
    target = CACHE / f"PyPI-all-{key.hexdigest()[:16]}.zip"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial_zip = target.with_suffix(".partial")
    with zipfile.ZipFile(partial_zip, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            record = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)
            archive.writestr(f"{record['id']}.json", json.dumps(record, default=_json_value))
    partial_zip.replace(target)
    return target


def _ghsa_source(ghsa: str, month: str) -> dict[str, str]:
    return {
        "source": "https://github.com/github/advisory-database/blob/main/advisories/"
        f"github-reviewed/{month}/{ghsa}/{ghsa}.json"
    }


def _npm(name: str, events: list[dict[str, str]], ghsa: str, month: str) -> dict[str, Any]:
    return {
        "package": {"name": name, "ecosystem": "npm", "purl": f"pkg:npm/{name}"},
        "ranges": [{"type": "SEMVER", "events": events}],
        "database_specific": _ghsa_source(ghsa, month),
    }


NPM_RECORDS: list[dict[str, Any]] = [
    {
        "id": "GHSA-29mw-wpgm-hmr9",
        "summary": "Regular Expression Denial of Service (ReDoS) in lodash",
        "details": "All versions of package lodash prior to 4.17.21 are vulnerable to Regular "
        "Expression Denial of Service (ReDoS) via the `toNumber`, `trim` and `trimEnd` "
        "functions.",
        "aliases": ["CVE-2020-28500"],
        "modified": "2025-09-29T21:12:31.102523Z",
        "published": "2022-01-06T20:30:46Z",
        "database_specific": {
            "severity": "MODERATE",
            "cwe_ids": ["CWE-1333", "CWE-400"],
            "nvd_published_at": "2021-02-15T11:15:00Z",
            "github_reviewed_at": "2021-03-19T22:45:28Z",
            "github_reviewed": True,
        },
        "references": [
            {"type": "ADVISORY", "url": "https://nvd.nist.gov/vuln/detail/CVE-2020-28500"},
            {"type": "WEB", "url": "https://github.com/lodash/lodash/pull/5065"},
            {"type": "PACKAGE", "url": "https://github.com/lodash/lodash"},
        ],
        "affected": [
            _npm(
                "lodash",
                [{"introduced": "4.0.0"}, {"fixed": "4.17.21"}],
                "GHSA-29mw-wpgm-hmr9",
                "2022/01",
            ),
            _npm(
                "lodash-es",
                [{"introduced": "4.0.0"}, {"fixed": "4.17.21"}],
                "GHSA-29mw-wpgm-hmr9",
                "2022/01",
            ),
            _npm(
                "lodash.trim",
                [{"introduced": "4.0.0"}, {"last_affected": "4.5.1"}],
                "GHSA-29mw-wpgm-hmr9",
                "2022/01",
            ),
            {
                "package": {
                    "name": "lodash-rails",
                    "ecosystem": "RubyGems",
                    "purl": "pkg:gem/lodash-rails",
                },
                "ranges": [
                    {
                        "type": "ECOSYSTEM",
                        "events": [{"introduced": "4.0.0"}, {"fixed": "4.17.21"}],
                    }
                ],
                "versions": ["4.0.0", "4.17.15", "4.17.4", "4.6.1"],
                "database_specific": _ghsa_source("GHSA-29mw-wpgm-hmr9", "2022/01"),
            },
        ],
        "schema_version": "1.7.3",
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L"}],
    },
    {
        "id": "GHSA-35jh-r3h4-6jhm",
        "summary": "Command Injection in lodash",
        "details": "`lodash` versions prior to 4.17.21 are vulnerable to Command Injection via "
        "the template function.",
        "aliases": ["CVE-2021-23337"],
        "modified": "2025-08-12T21:55:57.719943Z",
        "published": "2021-05-06T16:05:51Z",
        "database_specific": {
            "severity": "HIGH",
            "cwe_ids": ["CWE-77", "CWE-94"],
            "github_reviewed": True,
        },
        "references": [
            {"type": "ADVISORY", "url": "https://nvd.nist.gov/vuln/detail/CVE-2021-23337"}
        ],
        "affected": [
            _npm(
                "lodash",
                [{"introduced": "0"}, {"fixed": "4.17.21"}],
                "GHSA-35jh-r3h4-6jhm",
                "2021/05",
            ),
            _npm(
                "lodash-es",
                [{"introduced": "0"}, {"fixed": "4.17.21"}],
                "GHSA-35jh-r3h4-6jhm",
                "2021/05",
            ),
        ],
        "schema_version": "1.7.3",
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H"}],
    },
    {
        "id": "GHSA-xvch-5gv4-984h",
        "summary": "Prototype Pollution in minimist",
        "details": "Minimist <=1.2.5 is vulnerable to Prototype Pollution via "
        "file `index.js`, function `setKey()` (lines 69-95).",
        "aliases": ["CVE-2021-44906"],
        "modified": "2024-02-16T08:13:55.613734Z",
        "published": "2022-03-18T00:01:09Z",
        "database_specific": {
            "severity": "CRITICAL",
            "cwe_ids": ["CWE-1321"],
            "github_reviewed": True,
        },
        "references": [
            {"type": "ADVISORY", "url": "https://nvd.nist.gov/vuln/detail/CVE-2021-44906"}
        ],
        "affected": [
            _npm(
                "minimist",
                [{"introduced": "0"}, {"fixed": "0.2.4"}],
                "GHSA-xvch-5gv4-984h",
                "2022/03",
            ),
            _npm(
                "minimist",
                [{"introduced": "1.0.0"}, {"fixed": "1.2.6"}],
                "GHSA-xvch-5gv4-984h",
                "2022/03",
            ),
        ],
        "schema_version": "1.7.3",
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
    },
    {
        "id": "GHSA-67hx-6x53-jw92",
        "summary": "Babel vulnerable to arbitrary code execution when compiling specifically "
        "crafted malicious code",
        "details": "Using Babel to compile code that was specifically crafted by an attacker "
        "can lead to arbitrary code execution during compilation.",
        "aliases": ["CVE-2023-45133"],
        "modified": "2024-06-21T21:33:50.953455Z",
        "published": "2023-10-16T13:55:36Z",
        "database_specific": {
            "severity": "CRITICAL",
            "cwe_ids": ["CWE-184", "CWE-697"],
            "github_reviewed": True,
        },
        "references": [
            {
                "type": "WEB",
                "url": "https://github.com/babel/babel/security/advisories/GHSA-67hx-6x53-jw92",
            }
        ],
        "affected": [
            _npm(
                "@babel/traverse",
                [{"introduced": "0"}, {"fixed": "7.23.2"}],
                "GHSA-67hx-6x53-jw92",
                "2023/10",
            ),
            _npm(
                "@babel/traverse",
                [{"introduced": "8.0.0-alpha.0"}, {"fixed": "8.0.0-alpha.4"}],
                "GHSA-67hx-6x53-jw92",
                "2023/10",
            ),
        ],
        "schema_version": "1.7.3",
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:C/C:H/I:H/A:H"}],
    },
    {
        "id": "MAL-2025-46969",
        "summary": "Malicious code in chalk (npm)",
        "details": "Version 5.6.1 of chalk was published from a compromised maintainer "
        "account and holds code that rewrites cryptocurrency transactions in the browser.",
        "modified": "2025-09-08T20:06:03Z",
        "published": "2025-09-08T17:41:53Z",
        "schema_version": "1.5.0",
        "affected": [
            {
                "package": {"ecosystem": "npm", "name": "chalk"},
                "versions": ["5.6.1"],
                "database_specific": {"cwes": [{"cweId": "CWE-506"}]},
            }
        ],
        "database_specific": {
            "malicious-packages-origins": [
                {
                    "source": "ghsa-malware",
                    "import_time": "2025-09-08T20:06:03.377924Z",
                    "modified_time": "2025-09-08T17:41:53Z",
                    "versions": ["5.6.1"],
                }
            ]
        },
    },
]


def write_archive(target: Path, records: list[Any], *, stored: bool = False) -> Path:
    """A zip of `<id>.json` entries (`stored`: uncompressed, so a flipped byte keeps the
    JSON readable and only the CRC-32 gives it away)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(target, "w", method) as archive:
        for number, record in enumerate(records):
            name = record.get("id", f"record-{number}") if isinstance(record, dict) else number
            archive.writestr(f"{name}.json", json.dumps(record, indent=2))
    return target


def corrupt_crc(archive: Path, needle: bytes) -> None:
    """Change one byte of `needle` inside a stored entry's data: the central directory and
    the JSON stay valid, the entry's CRC-32 no longer matches."""
    body = bytearray(archive.read_bytes())
    at = body.index(needle)
    body[at] = body[at] ^ 0x20  # flips the letter's case
    archive.write_bytes(bytes(body))


@contextmanager
def serve(root: Path) -> Iterator[str]:
    """Serve `root` over HTTP on loopback; yields its base URL."""
    handler = partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class _QuietHandler(SimpleHTTPRequestHandler):
    """Serves files as Cloud Storage does, with `x-goog-hash: crc32c=..., md5=<base64>`; under
    a `tampered/` folder the declared MD5 is another file's (a transfer that went wrong)."""

    def end_headers(self) -> None:
        path = Path(self.translate_path(self.path))
        if path.is_file():
            body = path.read_bytes() + (b"x" if "/tampered/" in self.path else b"")
            md5 = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
            self.send_header("x-goog-hash", f"crc32c=AAAAAA==, md5={md5}")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        return


def closed_port_url() -> str:
    """A loopback URL nothing listens on (bound, then closed)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
