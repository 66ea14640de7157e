"""`advisories sync` against real OSV data served from loopback (issue 10, item 4): OSV's
bucket layout (`<URL>/<ecosystem>/all.zip`) with PyPI's archive built from the PyPA records
in `../shared/fixtures/osv-pypi` and npm's from records as osv.dev publishes them."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from codefactory.advisories import AdvisoryDatabase, index_path
from codefactory.advisories.importer import default_advisories
from codefactory.advisories.settings import AdvisorySettings
from codefactory.advisories.sync import AdvisorySyncFailed, sync_advisories
from codefactory.cli import app
from codefactory.config import load_settings
from codefactory.factory import build_factory
from tests.conftest import SHARED_FIXTURES
from tests.osv_archives import (
    NPM_RECORDS,
    closed_port_url,
    corrupt_crc,
    pypi_archive,
    serve,
    write_archive,
)

SETTINGS = AdvisorySettings()


@pytest.fixture(scope="module")
def osv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A loopback server with one OSV bucket layout per folder: `good`, `crc` (npm's archive
    has an entry whose CRC-32 fails), `invalid` (an npm record that is not OSV), `html` (a
    proxy's error page where npm's zip should be), `pypi-only` (no npm folder), `tampered`
    (good archives, wrong `x-goog-hash`), `swapped` (PyPI's archive as npm's)."""
    if not (SHARED_FIXTURES / "osv-pypi" / "vulns").is_dir():
        pytest.skip("shared fixture data missing: osv-pypi")
    root = tmp_path_factory.mktemp("bucket")
    pypi = pypi_archive()
    for layout in ("good", "crc", "invalid", "html", "pypi-only", "tampered", "swapped"):
        (root / layout / "PyPI").mkdir(parents=True)
        shutil.copyfile(pypi, root / layout / "PyPI" / "all.zip")
    write_archive(root / "good" / "npm" / "all.zip", NPM_RECORDS)
    shutil.copytree(root / "good" / "npm", root / "tampered" / "npm")
    (root / "swapped" / "npm").mkdir()
    shutil.copyfile(pypi, root / "swapped" / "npm" / "all.zip")
    corrupt_crc(
        write_archive(root / "crc" / "npm" / "all.zip", NPM_RECORDS, stored=True),
        b"Command Injection",
    )
    bad = {"id": "GHSA-bad1-bad2-bad3", "affected": [{"package": {"ecosystem": "npm"}}]}
    write_archive(root / "invalid" / "npm" / "all.zip", [*NPM_RECORDS, bad])
    (root / "html" / "npm").mkdir()
    (root / "html" / "npm" / "all.zip").write_text("<html><body>Access denied</body></html>")
    with serve(root) as url:
        yield url


@pytest.fixture(scope="module")
def synced(osv: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder's advisory folder after one good sync of both ecosystems."""
    folder = tmp_path_factory.mktemp("data") / "advisories"
    sync_advisories(folder, SETTINGS, base_url=f"{osv}/good")
    return folder


def test_sync_imports_both_ecosystems_and_records_when(osv: str, tmp_path: Path) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    report = sync_advisories(tmp_path / "advisories", SETTINGS, base_url=f"{osv}/good")
    yaml_records = len(list((SHARED_FIXTURES / "osv-pypi" / "vulns").rglob("*.yaml")))
    pypi, npm = report.ecosystems["PyPI"], report.ecosystems["npm"]
    assert pypi.records + pypi.withdrawn == yaml_records and pypi.records > 2500
    assert (npm.records, npm.withdrawn, npm.other_ecosystems) == (5, 0, 0)
    assert pypi.source == f"{osv}/good/PyPI/all.zip" and len(pypi.sha256) == 64
    assert report.archive_bytes["PyPI"] == pypi_archive().stat().st_size

    db = AdvisoryDatabase.load(default_advisories(tmp_path, Path("/shipped")))
    assert db.digest == report.digest
    fresh = db.freshness()
    assert fresh.records == pypi.records + 5
    assert fresh.synced_at is not None and before <= fresh.synced_at <= datetime.now(UTC)
    assert db.freshness(ecosystem="npm").source == f"{osv}/good/npm/all.zip"
    # PyPA lists two advisories against requests 2.19.1: CVE-2018-18074 and CVE-2023-32681
    found = db.vulnerabilities("requests", "2.19.1")
    assert [(a.id, a.aliases[0]) for a in found] == [
        ("PYSEC-2018-28", "CVE-2018-18074"),
        ("PYSEC-2023-74", "CVE-2023-32681"),
    ]
    assert str(db.lowest_safe_version("requests", "2.19.1")) == "2.31.0"
    # npm: inside and outside one SEMVER range
    assert [a.id for a in db.vulnerabilities("minimist", "1.2.5", ecosystem="npm")] == [
        "GHSA-xvch-5gv4-984h"
    ]
    assert db.vulnerabilities("minimist", "1.2.6", ecosystem="npm") == []
    assert not list((tmp_path / "advisories").glob(".sync-*"))  # the downloads are gone


def _state(folder: Path) -> tuple[bytes, bytes]:
    return index_path(folder).read_bytes(), (folder / "manifest.json").read_bytes()


@pytest.mark.parametrize(
    ("layout", "reason"),
    [
        ("crc", r"npm/all.zip: GHSA-35jh-r3h4-6jhm.json: Bad CRC-32"),
        ("invalid", r"npm/all.zip: GHSA-bad1-bad2-bad3.json: `package.name` must be a str"),
        ("html", r"npm/all.zip: not a zip archive"),
        ("pypi-only", r"npm/all.zip: HTTP 404"),
        # the server declares, as Cloud Storage does, an MD5 the bytes received do not have
        ("tampered", r"PyPI/all.zip: MD5 differs from the x-goog-hash header"),
        # a mirror that put PyPI's archive where npm's belongs must not wipe npm's data
        ("swapped", r"npm/all.zip: none of its \d+ records names a npm package"),
    ],
)
def test_a_bad_archive_fails_the_whole_sync_and_leaves_the_previous_data(
    osv: str, synced: Path, layout: str, reason: str
) -> None:
    before = _state(synced)
    with pytest.raises(AdvisorySyncFailed, match=reason):
        sync_advisories(synced, SETTINGS, base_url=f"{osv}/{layout}")
    assert _state(synced) == before  # PyPI's archive was good, and still nothing changed
    assert not list(synced.glob(".sync-*"))


def test_the_size_cap_and_an_unreachable_mirror(osv: str, synced: Path) -> None:
    before = _state(synced)
    capped = AdvisorySettings(max_archive_bytes=1_000_000)
    with pytest.raises(AdvisorySyncFailed, match=r"exceeds advisories.max_archive_bytes"):
        sync_advisories(synced, capped, base_url=f"{osv}/good", ecosystems=["PyPI"])
    with pytest.raises(AdvisorySyncFailed, match=r"ConnectError"):
        sync_advisories(synced, SETTINGS, base_url=closed_port_url())
    assert _state(synced) == before


def test_syncing_one_ecosystem_keeps_the_other(osv: str, synced: Path, tmp_path: Path) -> None:
    folder = tmp_path / "advisories"
    shutil.copytree(synced, folder)
    previous = json.loads((folder / "manifest.json").read_text())["ecosystems"]
    abandoned, live = folder / ".sync-killed", folder / ".sync-running"
    for scratch in (abandoned, live):
        (scratch / "npm.zip").parent.mkdir()
        (scratch / "npm.zip").write_bytes(b"PK")
    os.utime(abandoned, (0, 0))  # a sync killed long ago left its downloads
    report = sync_advisories(folder, SETTINGS, base_url=f"{osv}/pypi-only", ecosystems=["PyPI"])
    assert not abandoned.exists() and live.exists()
    assert list(report.ecosystems) == ["PyPI"]
    db = AdvisoryDatabase.load(index_path(folder))
    assert db.freshness(ecosystem="npm").source == previous["npm"]["source"]
    assert db.freshness(ecosystem="PyPI").source == f"{osv}/pypi-only/PyPI/all.zip"
    assert db.vulnerabilities("lodash", "4.17.20", ecosystem="npm")


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., Any]:
    runner = CliRunner()
    data_dir = tmp_path / "data"

    def invoke(*args: str, code: int = 0) -> Any:
        result = runner.invoke(app, ["--data-dir", str(data_dir), *args])
        assert result.exit_code == code, (args, result.output, result.exception)
        return result

    invoke.data_dir = data_dir  # type: ignore[attr-defined]
    return invoke


def test_the_cli_prints_counts_and_age_and_audits_each_sync(
    osv: str, cli: Callable[..., Any]
) -> None:
    shown = cli("advisories", "show").output
    assert "PyPI  1 records, never synced" in shown  # the shipped record, and it says so

    output = cli("advisories", "sync", "--from", f"{osv}/good", "--ecosystem", "pypi").output
    assert "  PyPI  " in output and "npm" not in output
    output = cli("advisories", "sync", "--from", f"{osv}/good").output
    assert output.startswith(f"synced advisories from {osv}/good in ")
    assert "  npm   5 records (0 withdrawn, 0 of other ecosystems), " in output
    shown = cli("advisories", "show").output
    assert "  npm   5 records, synced 20" in shown and "(just now) from " in shown
    as_json = json.loads(cli("advisories", "show", "--json").output)
    assert as_json["ecosystems"]["npm"]["records"] == 5
    assert 0 <= as_json["ecosystems"]["npm"]["age_s"] < 120

    failed = cli("advisories", "sync", "--from", closed_port_url(), code=1)
    message = " ".join(failed.stderr.split())
    assert message.startswith("error: cannot sync advisories from http://127.0.0.1:")
    assert "ConnectError" in message and "the previous advisory data is untouched" in message
    assert "npm 5 records, synced" in message

    refused = cli("advisories", "sync", "--ecosystem", "RubyGems", code=1)
    assert "unsupported ecosystem 'RubyGems'" in refused.stderr

    factory = build_factory(load_settings(cli.data_dir))  # type: ignore[attr-defined]
    synced = factory.audit.latest("advisories-synced")
    assert synced is not None and synced.data["source"] == f"{osv}/good"
    assert synced.data["ecosystems"]["npm"]["records"] == 5
    failures = [
        e.data["reason"] for e in factory.audit.events() if e.name == "advisories-sync-failed"
    ]
    assert len(failures) == 2
    assert "ConnectError" in failures[0] and "RubyGems" in failures[1]


def test_the_cli_imports_a_checkout_and_says_what_it_skipped(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    checkout = tmp_path / "advisory-database"
    shutil.copytree(SHARED_FIXTURES / "osv-pypi", checkout)  # README.md, LICENSE, vulns/
    (checkout / ".github" / "workflows").mkdir(parents=True)
    (checkout / ".github" / "workflows" / "validate.yml").write_text("on: [pull_request]\n")
    (checkout / "tools").mkdir()
    (checkout / "tools" / "validate.py").write_text("import jsonschema\n")
    output = " ".join(cli("advisories", "import", str(checkout)).output.split())
    assert output.startswith("imported 2651 PyPI and 0 npm advisories (2661 records read, 10 ")
    # the PyPA fixture itself holds README.md, LICENSE and the hidden .id-allocator
    skipped = "1 *.md, 1 *.py, 1 .github/, 1 .id-allocator, 1 no suffix"
    assert f"skipped 5 files that are not advisories: {skipped}" in output
    shown = cli("advisories", "show").output
    assert "PyPI  2651 records, synced 20" in shown and f"from {checkout}" in shown
