"""`advisories import` of a whole advisory-database checkout, and the manifest that gives the
data its age (issue 10, items 4 and 9), on the real PyPA records."""

from __future__ import annotations

import json
import shutil
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from codefactory.advisories import (
    DEFAULT_ADVISORIES,
    AdvisoryDatabase,
    AdvisoryFileInvalid,
    AdvisoryImportFailed,
    import_advisories,
    index_path,
)
from tests.conftest import SHARED_FIXTURES
from tests.osv_archives import NPM_RECORDS

PYPA = SHARED_FIXTURES / "osv-pypi"
NOT_ADVISORIES = {
    "README.md": (PYPA / "README.md").read_text() if PYPA.is_dir() else "# db\n",
    "LICENSE": "Creative Commons Attribution 4.0 International\n",
    ".github/workflows/validate.yml": "on: [pull_request]\njobs:\n  validate:\n"
    "    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n",
    ".github/dependabot.yml": "version: 2\nupdates:\n  - package-ecosystem: pip\n",
    ".gitignore": "__pycache__/\n",
    "tools/validate.py": "import jsonschema\n",
    "tools/allocate_ids.py": "print('allocate')\n",
    "tools/requirements.txt": "jsonschema==4.23.0\n",
    "triage/config.yaml": "reviewers: [alice, bob]\nlabels: {needs-triage: true}\n",
}
EXPECTED_SKIPS = {
    ".github/": 2,
    ".gitignore": 1,
    "*.py": 2,
    "*.md": 1,
    "*.txt": 1,
    "no suffix": 1,
    "JSON/YAML, not OSV": 1,
}


@pytest.fixture
def checkout(osv_pypi_vulns: Path, tmp_path: Path) -> Path:
    """A folder shaped like a clone of github.com/pypa/advisory-database (three packages)."""
    root = tmp_path / "advisory-database"
    for package in ("idna", "requests", "jinja2"):
        shutil.copytree(osv_pypi_vulns / package, root / "vulns" / package)
    for name, text in NOT_ADVISORIES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_a_checkout_imports_its_advisories_and_counts_what_it_skipped(
    checkout: Path, tmp_path: Path
) -> None:
    report = import_advisories(checkout, tmp_path / "db")
    advisories = len(list((checkout / "vulns").rglob("*.yaml")))
    assert report.records == report.pypi_records == advisories > 10
    assert report.skipped == EXPECTED_SKIPS
    db = AdvisoryDatabase.load(index_path(tmp_path / "db"))
    assert [a.id for a in db.vulnerabilities("requests", "2.19.1")] == [
        "PYSEC-2018-28",
        "PYSEC-2023-74",
    ]


def test_a_zipped_checkout_reports_the_same_skips(checkout: Path, tmp_path: Path) -> None:
    export = tmp_path / "advisory-database-main.zip"
    with zipfile.ZipFile(export, "w") as archive:  # GitHub's archives hold one top folder
        for path in sorted(checkout.rglob("*")):
            if path.is_file():
                archive.write(path, f"advisory-database-main/{path.relative_to(checkout)}")
    report = import_advisories(export, tmp_path / "db")
    assert report.skipped == EXPECTED_SKIPS and report.pypi_records > 10


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("vulns/idna/PYSEC-2099-1.yaml", "id: PYSEC-2099-1\naffected: 3\n", "must be a list"),
        ("vulns/idna/PYSEC-2099-2.yaml", "- a list, not a record\n", "the record must be a dict"),
        ("vulns/idna/GHSA-aaaa-bbbb-cccc.yaml", "id: [unclosed\n", "GHSA-aaaa-bbbb-cccc.yaml"),
        ("vulns/idna/notes.yaml", "id: X\naffected: [{package: {}}]\n", "`package.name`"),
    ],
)
def test_a_file_that_looks_like_an_advisory_but_is_malformed_refuses_the_import(
    checkout: Path, tmp_path: Path, name: str, text: str, reason: str
) -> None:
    import_advisories(checkout, tmp_path / "db")
    before = index_path(tmp_path / "db").read_bytes()
    (checkout / name).write_text(text)
    with pytest.raises(AdvisoryImportFailed, match=reason) as caught:
        import_advisories(checkout, tmp_path / "db")
    assert Path(name).name in str(caught.value)
    assert index_path(tmp_path / "db").read_bytes() == before


def test_a_checkout_without_advisories_says_what_it_skipped(tmp_path: Path) -> None:
    (tmp_path / "empty" / "tools").mkdir(parents=True)
    (tmp_path / "empty" / "README.md").write_text("# nothing\n")
    (tmp_path / "empty" / "tools" / "x.py").write_text("")
    with pytest.raises(
        AdvisoryImportFailed, match=r"no OSV records .*\(1 \*\.md, 1 \*\.py skipped\)"
    ):
        import_advisories(tmp_path / "empty", tmp_path / "db")


def test_freshness_comes_from_the_manifest(checkout: Path, tmp_path: Path) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    report = import_advisories(checkout, tmp_path / "db")
    db = AdvisoryDatabase.load(index_path(tmp_path / "db"))
    fresh = db.freshness(ecosystem="PyPI")
    assert fresh.records == report.pypi_records and fresh.source == str(checkout)
    assert fresh.synced_at is not None and before <= fresh.synced_at <= datetime.now(UTC)
    age = fresh.age(fresh.synced_at + timedelta(hours=3))
    assert age == timedelta(hours=3)
    assert db.freshness() == fresh  # only PyPI has data
    npm = db.freshness(ecosystem="npm")
    assert (npm.records, npm.synced_at) == (0, None)


def test_shipped_data_has_no_sync_date_and_names_its_folder() -> None:
    fresh = AdvisoryDatabase.load(DEFAULT_ADVISORIES).freshness(ecosystem="PyPI")
    assert fresh.records == 1 and fresh.synced_at is None
    assert fresh.source == str(DEFAULT_ADVISORIES) and fresh.age() is None


def test_an_import_keeps_the_ecosystems_it_does_not_hold(checkout: Path, tmp_path: Path) -> None:
    npm = tmp_path / "npm"
    npm.mkdir()
    for record in NPM_RECORDS:
        (npm / f"{record['id']}.json").write_text(json.dumps(record))
    import_advisories(npm, tmp_path / "db")
    import_advisories(checkout, tmp_path / "db")  # PyPI only: npm stays
    db = AdvisoryDatabase.load(index_path(tmp_path / "db"))
    assert [a.id for a in db.vulnerabilities("chalk", "5.6.1", ecosystem="npm")] == [
        "MAL-2025-46969"
    ]
    assert db.vulnerabilities("idna", "3.6")
    assert db.freshness(ecosystem="npm").source == str(npm)
    assert db.freshness(ecosystem="PyPI").source == str(checkout)
    both = db.freshness()
    assert both.records == 5 + db.freshness(ecosystem="PyPI").records
    assert both.source == f"{checkout}, {npm}"  # sorted by ecosystem: PyPI, npm


def test_a_manifest_that_does_not_match_the_index_gives_no_date(
    checkout: Path, tmp_path: Path
) -> None:
    import_advisories(checkout, tmp_path / "db")
    index = index_path(tmp_path / "db")
    index.write_bytes(index.read_bytes().replace(b'"format": 2', b'"format": 2 '))
    fresh = AdvisoryDatabase.load(index).freshness(ecosystem="PyPI")
    assert fresh.synced_at is None and "does not match" in fresh.source
    (tmp_path / "db" / "manifest.json").write_text("{broken")
    fresh = AdvisoryDatabase.load(index).freshness(ecosystem="PyPI")
    assert fresh.synced_at is None and "unreadable manifest" in fresh.source


GHSA_REQUESTS = {
    # GitHub's record of CVE-2018-18074, which OSV's PyPI archive holds beside PYSEC-2018-28
    "id": "GHSA-x84v-xcm2-53pg",
    "summary": "Insufficiently Protected Credentials in Requests",
    "details": "The Requests package before 2.20.0 for Python sends an HTTP Authorization "
    "header to an http URI upon receiving a same-hostname https-to-http redirect, which makes "
    "it easier for remote attackers to discover credentials by sniffing the network.",
    "aliases": ["CVE-2018-18074"],
    "modified": "2024-09-30T22:22:10.459463Z",
    "published": "2018-10-29T19:06:26Z",
    "affected": [
        {
            "package": {"name": "requests", "ecosystem": "PyPI", "purl": "pkg:pypi/requests"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.20.0"}]}],
        }
    ],
    "schema_version": "1.7.3",
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
}


def test_records_that_alias_each_other_are_one_advisory(
    osv_pypi_vulns: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "bucket"
    shutil.copytree(osv_pypi_vulns / "requests", folder / "requests")
    (folder / "GHSA-x84v-xcm2-53pg.json").write_text(json.dumps(GHSA_REQUESTS))
    db = AdvisoryDatabase.load(folder)
    found = db.vulnerabilities("requests", "2.19.1")
    assert [a.id for a in found] == ["PYSEC-2018-28", "PYSEC-2023-74"]
    assert found[0].aliases == ("CVE-2018-18074", "GHSA-x84v-xcm2-53pg")
    assert found[0].severity.startswith("CVSS:3.1/")  # PyPA's record has none; GitHub's has
    assert [a.id for a in db.advisories("requests")].count("GHSA-x84v-xcm2-53pg") == 1


def _npm_folder(tmp_path: Path, records: list[dict[str, object]]) -> Path:
    folder = tmp_path / f"npm-{len(records)}"
    folder.mkdir()
    for record in records:
        (folder / f"{record['id']}.json").write_text(json.dumps(record))
    return folder


def test_npm_data_is_read_only_when_an_npm_package_is_judged(
    checkout: Path, tmp_path: Path
) -> None:
    db_folder = tmp_path / "db"
    import_advisories(_npm_folder(tmp_path, NPM_RECORDS), db_folder)
    import_advisories(checkout, db_folder)
    (side,) = db_folder.glob("osv-index.npm.*.json")
    side.write_bytes(side.read_bytes().replace(b"lodash", b"LODASH"))  # damaged after the sync
    db = AdvisoryDatabase.load(index_path(db_folder))
    assert db.vulnerabilities("idna", "3.6")  # PyPI: the side file is not read
    assert db.freshness(ecosystem="npm").records == 5  # counted by the manifest
    with pytest.raises(AdvisoryFileInvalid, match=r"osv-index\.npm\..*SHA-256"):
        db.vulnerabilities("chalk", "5.6.1", ecosystem="npm")


def test_a_long_running_reader_keeps_its_data_across_a_later_import(tmp_path: Path) -> None:
    db_folder = tmp_path / "db"
    import_advisories(_npm_folder(tmp_path, NPM_RECORDS), db_folder)
    (first,) = db_folder.glob("osv-index.npm.*.json")
    running = AdvisoryDatabase.load(index_path(db_folder))
    import_advisories(_npm_folder(tmp_path, NPM_RECORDS[:2]), db_folder)  # lodash only
    assert not first.exists()  # the side file no index names any more is removed
    assert len(list(db_folder.glob("osv-index.npm.*.json"))) == 1
    # the factory that opened the old index still judges with it
    assert [a.id for a in running.vulnerabilities("chalk", "5.6.1", ecosystem="npm")] == [
        "MAL-2025-46969"
    ]
    fresh = AdvisoryDatabase.load(index_path(db_folder))
    assert fresh.vulnerabilities("chalk", "5.6.1", ecosystem="npm") == []
    assert fresh.freshness(ecosystem="npm").records == 2


def test_null_arrays_are_absent_but_a_wrong_type_is_refused(tmp_path: Path) -> None:
    # OSV's JSON schema (validation/schema.json) types `aliases` and `severity` as array|null
    record = {**NPM_RECORDS[4], "aliases": None, "severity": None}
    record["affected"] = [{**record["affected"][0], "ranges": None}]
    folder = _npm_folder(tmp_path, [record])
    assert import_advisories(folder, tmp_path / "db").npm_records == 1
    db = AdvisoryDatabase.load(index_path(tmp_path / "db"))
    assert [a.aliases for a in db.vulnerabilities("chalk", "5.6.1", ecosystem="npm")] == [()]
    (folder / "MAL-2025-46969.json").write_text(json.dumps({**record, "affected": {}}))
    with pytest.raises(AdvisoryImportFailed, match="`affected` must be a list, not dict"):
        import_advisories(folder, tmp_path / "db")
