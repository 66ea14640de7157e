"""npm advisories in the OSV database: exact (scoped) names, SemVer 2.0 order, SEMVER ranges
and explicit `versions` lists, on records shaped as osv.dev publishes them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codefactory.advisories import AdvisoryDatabase
from codefactory.advisories.importer import import_advisories, index_path
from tests.osv_archives import NPM_RECORDS


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> AdvisoryDatabase:
    folder = tmp_path_factory.mktemp("npm")
    for record in NPM_RECORDS:
        (folder / f"{record['id']}.json").write_text(json.dumps(record))
    return AdvisoryDatabase.load(folder)


def ids(db: AdvisoryDatabase, name: str, version: str) -> list[str]:
    return [a.id for a in db.vulnerabilities(name, version, ecosystem="npm")]


def test_a_version_inside_and_outside_a_semver_range(db: AdvisoryDatabase) -> None:
    assert ids(db, "lodash", "4.17.20") == ["GHSA-29mw-wpgm-hmr9", "GHSA-35jh-r3h4-6jhm"]
    assert ids(db, "lodash", "4.17.21") == []
    # GHSA-29mw starts at 4.0.0; GHSA-35jh at "0"
    assert ids(db, "lodash", "3.10.1") == ["GHSA-35jh-r3h4-6jhm"]
    # SemVer, not string order: 4.9.0 < 4.17.20 < 4.17.21
    assert ids(db, "lodash", "4.9.0") == ["GHSA-29mw-wpgm-hmr9", "GHSA-35jh-r3h4-6jhm"]
    found = db.vulnerabilities("lodash", "4.17.20", ecosystem="npm")
    assert found[1].aliases == ("CVE-2021-23337",) and found[1].fixed == ("4.17.21",)
    assert found[1].ecosystem == "npm" and found[1].severity.startswith("CVSS:3.1/")


def test_last_affected_and_two_affected_blocks(db: AdvisoryDatabase) -> None:
    assert ids(db, "lodash.trim", "4.5.1") == ["GHSA-29mw-wpgm-hmr9"]
    assert ids(db, "lodash.trim", "4.5.2") == []
    # minimist: [0, 0.2.4) and [1.0.0, 1.2.6) in two `affected` entries
    hits = {v: bool(ids(db, "minimist", v)) for v in ("0.2.3", "0.2.4", "1.0.0", "1.2.5", "1.2.6")}
    assert hits == {"0.2.3": True, "0.2.4": False, "1.0.0": True, "1.2.5": True, "1.2.6": False}


def test_scoped_names_and_prereleases_in_semver_order(db: AdvisoryDatabase) -> None:
    assert ids(db, "@babel/traverse", "7.23.1") == ["GHSA-67hx-6x53-jw92"]
    assert ids(db, "@babel/traverse", "7.23.2") == []
    # 8.0.0-alpha.0 <= v < 8.0.0-alpha.4; 8.0.0 itself (after every prerelease) is not
    assert ids(db, "@babel/traverse", "8.0.0-alpha.3") == ["GHSA-67hx-6x53-jw92"]
    assert ids(db, "@babel/traverse", "8.0.0-alpha.4") == []
    assert ids(db, "@babel/traverse", "8.0.0") == []
    assert ids(db, "babel/traverse", "7.0.0") == []


def test_explicit_versions_list(db: AdvisoryDatabase) -> None:
    assert ids(db, "chalk", "5.6.1") == ["MAL-2025-46969"]
    assert ids(db, "chalk", "5.6.1+build.7") == ["MAL-2025-46969"]  # build metadata ignored
    assert ids(db, "chalk", "5.6.0") == ids(db, "chalk", "5.6.2") == []
    assert db.lowest_safe_version("chalk", "5.6.1", ecosystem="npm") is None


def test_names_are_exact_and_ecosystems_do_not_mix(db: AdvisoryDatabase) -> None:
    assert ids(db, "Lodash", "4.17.20") == []  # npm names are case-sensitive
    assert db.vulnerabilities("lodash", "4.17.20") == []  # PyPI is the default ecosystem
    assert db.advisories("lodash-rails", ecosystem="npm") == []  # its RubyGems entry is skipped
    with pytest.raises(ValueError, match="unsupported ecosystem 'RubyGems'"):
        db.vulnerabilities("lodash-rails", "4.0.0", ecosystem="RubyGems")


def test_a_version_semver_cannot_read_matches_only_a_verbatim_listing(
    db: AdvisoryDatabase,
) -> None:
    assert ids(db, "lodash", "latest") == []
    assert ids(db, "lodash", "v4.17.20") == ids(db, "lodash", "4.17.20")  # npm's clean()


def test_lowest_safe_version_in_semver_order(db: AdvisoryDatabase) -> None:
    assert str(db.lowest_safe_version("lodash", "4.17.20", ecosystem="npm")) == "4.17.21"
    assert str(db.lowest_safe_version("minimist", "1.2.5", ecosystem="npm")) == "1.2.6"
    assert str(db.lowest_safe_version("minimist", "0.2.1", ecosystem="npm")) == "0.2.4"
    assert str(db.lowest_safe_version("@babel/traverse", "7.0.0", ecosystem="npm")) == "7.23.2"


def test_an_imported_index_matches_as_the_folder_does(db: AdvisoryDatabase, tmp_path: Path) -> None:
    folder = tmp_path / "records"
    folder.mkdir()
    for record in NPM_RECORDS:
        (folder / f"{record['id']}.json").write_text(json.dumps(record))
    report = import_advisories(folder, tmp_path / "db")
    assert (report.npm_records, report.pypi_records, report.other_ecosystems) == (5, 0, 0)
    imported = AdvisoryDatabase.load(index_path(tmp_path / "db"))
    for name, version in (("lodash", "4.17.20"), ("@babel/traverse", "8.0.0-alpha.1")):
        assert imported.vulnerabilities(name, version, ecosystem="npm") == db.vulnerabilities(
            name, version, ecosystem="npm"
        )
    assert imported.freshness(ecosystem="npm").records == 5
    assert imported.freshness(ecosystem="PyPI").records == 0
