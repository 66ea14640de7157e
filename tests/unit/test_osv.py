"""The offline OSV database against the real PyPA advisory data."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from packaging.version import Version

from codefactory.advisories import DEFAULT_ADVISORIES, AdvisoryDatabase, AdvisoryFileInvalid
from tests.conftest import SHARED_FIXTURES


@pytest.fixture(scope="module")
def db() -> AdvisoryDatabase:
    folder = SHARED_FIXTURES / "osv-pypi" / "vulns"
    if not folder.is_dir():
        pytest.skip(f"shared fixture data missing: {folder}")
    return AdvisoryDatabase.load(folder)


def _record(folder: Path, name: str, record: dict[str, object]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(record))


def _affected(package: str, ranges: Sequence[object], **extra: object) -> dict[str, object]:
    return {"package": {"ecosystem": "PyPI", "name": package}, "ranges": ranges, **extra}


def test_idna_36_is_affected_and_37_is_the_lowest_safe(db: AdvisoryDatabase) -> None:
    found = db.vulnerabilities("idna", "3.6")
    assert [a.id for a in found] == ["PYSEC-2024-60"]
    assert found[0].aliases == ("CVE-2024-3651",)
    assert found[0].fixed == ("3.7",)
    assert found[0].severity.startswith("CVSS:3.1/")
    assert found[0].summary.startswith("A vulnerability was identified in the kjd/idna")
    assert db.lowest_safe_version("idna", "3.6") == Version("3.7")
    assert db.vulnerabilities("idna", "3.7") == []


def test_loads_the_whole_database(osv_pypi_vulns: Path) -> None:
    # load time is measured in benchmarks, not asserted here (noisy machines)
    db = AdvisoryDatabase.load(osv_pypi_vulns)
    assert len(db) > 2500


def test_last_affected_bounds_the_range(db: AdvisoryDatabase) -> None:
    # py: introduced 0, last_affected 1.11.0, and no fixed release at all
    assert [a.id for a in db.vulnerabilities("py", "1.11.0")] == ["PYSEC-2022-42969"]
    assert [a.id for a in db.vulnerabilities("py", "1.10.0")] == ["PYSEC-2022-42969"]
    assert db.vulnerabilities("py", "1.11.1") == []
    assert db.lowest_safe_version("py", "1.11.0") is None


def test_git_and_ecosystem_ranges_in_one_record(db: AdvisoryDatabase) -> None:
    # PYSEC-2024-60 holds a GIT range (commit ids) and an ECOSYSTEM range; only the latter counts
    assert db.vulnerabilities("idna", "0.1")
    assert db.vulnerabilities("idna", "0.0.9") == []


def test_multiple_introduced_fixed_pairs(db: AdvisoryDatabase) -> None:
    # werkzeug PYSEC-2023-221: introduced 0, fixed 2.3.8, introduced 3.0.0, fixed 3.0.1
    def hit(version: str) -> bool:
        return "PYSEC-2023-221" in {a.id for a in db.vulnerabilities("werkzeug", version)}

    assert [hit(v) for v in ("0.1", "2.3.7", "2.3.8", "3.0.0", "3.0.1")] == [
        True,
        True,
        False,
        True,
        False,
    ]


def test_lowest_safe_skips_versions_other_advisories_affect(db: AdvisoryDatabase) -> None:
    safe = db.lowest_safe_version("django", "3.2.0")
    assert safe is not None and safe > Version("3.2.0")
    assert db.vulnerabilities("django", safe) == []
    fixed_of_current = min(
        Version(v) for a in db.vulnerabilities("django", "3.2.0") for v in a.fixed
    )
    assert safe > fixed_of_current  # the first fix is itself affected by later advisories


def test_names_are_normalised(db: AdvisoryDatabase) -> None:
    assert db.vulnerabilities("Django", "3.2.0") == db.vulnerabilities("django", "3.2.0")
    assert db.vulnerabilities("IDNA", "3.6") == db.vulnerabilities("idna", "3.6")
    assert db.vulnerabilities("Flask_Caching", "1.0.0") == db.vulnerabilities(
        "flask-caching", "1.0.0"
    )


def test_withdrawn_records_are_ignored(db: AdvisoryDatabase) -> None:
    # loguru PYSEC-2022-15 is withdrawn; PYSEC-2022-14 still stands
    assert "PYSEC-2022-15" not in {a.id for a in db.advisories("loguru")}
    assert [a.id for a in db.vulnerabilities("loguru", "0.5.0")] == ["PYSEC-2022-14"]


def test_exact_versions_list_matches_without_ranges(db: AdvisoryDatabase) -> None:
    # gratient PYSEC-2024-1 lists only "0.5"; PEP 440 equality also matches "0.5.0"
    assert [a.id for a in db.vulnerabilities("gratient", "0.5")] == ["PYSEC-2024-1"]
    assert [a.id for a in db.vulnerabilities("gratient", "0.5.0")] == ["PYSEC-2024-1"]
    assert db.vulnerabilities("gratient", "0.6") == []
    assert db.lowest_safe_version("gratient", "0.5") is None


def test_git_only_record_has_no_ecosystem_match(tmp_path: Path) -> None:
    git: dict[str, object] = {
        "type": "GIT",
        "repo": "https://example.org/x",
        "events": [{"introduced": "0"}],
    }
    _record(tmp_path, "X-1.json", {"id": "X-1", "affected": [_affected("gitonly", [git])]})
    db = AdvisoryDatabase.load(tmp_path)
    assert len(db) == 1
    assert db.vulnerabilities("gitonly", "1.0") == []


def test_several_ecosystem_ranges_and_pairs(tmp_path: Path) -> None:
    ranges: list[dict[str, object]] = [
        {"type": "ECOSYSTEM", "events": [{"fixed": "1.5"}, {"introduced": "1.0"}]},
        {
            "type": "ECOSYSTEM",
            "events": [{"introduced": "2.0"}, {"fixed": "2.1"}, {"introduced": "3.0"}],
        },
    ]
    later = [{"type": "ECOSYSTEM", "events": [{"introduced": "1.5"}, {"fixed": "1.6"}]}]
    _record(tmp_path, "a.json", {"id": "A", "affected": [_affected("pkg", ranges)]})
    _record(tmp_path, "b.json", {"id": "B", "affected": [_affected("pkg", later)]})
    db = AdvisoryDatabase.load(tmp_path)
    affected = {v: [a.id for a in db.vulnerabilities("pkg", v)] for v in ("0.9", "1.2", "1.5")}
    assert affected == {"0.9": [], "1.2": ["A"], "1.5": ["B"]}
    assert db.vulnerabilities("pkg", "2.0.1")[0].id == "A"
    assert db.vulnerabilities("pkg", "2.5") == []
    assert db.vulnerabilities("pkg", "3.0rc1") == []
    assert db.vulnerabilities("pkg", "9.0")[0].id == "A"
    # 1.5 fixes A but B affects it; 1.6 fixes B and nothing affects it
    assert db.lowest_safe_version("pkg", "1.2") == Version("1.6")
    assert db.lowest_safe_version("pkg", "2.0") == Version("2.1")
    assert db.lowest_safe_version("pkg", "3.1") is None


def test_withdrawn_and_other_ecosystems_skipped(tmp_path: Path) -> None:
    every = [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]
    _record(
        tmp_path,
        "w.json",
        {"id": "W", "withdrawn": "2024-01-01T00:00:00Z", "affected": [_affected("p", every)]},
    )
    npm = {"package": {"ecosystem": "npm", "name": "p"}, "ranges": every}
    _record(tmp_path, "n.json", {"id": "N", "affected": [npm]})
    assert AdvisoryDatabase.load(tmp_path).vulnerabilities("p", "1.0") == []


def test_malformed_yaml_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "pkg" / "BAD-1.yaml"
    bad.parent.mkdir()
    bad.write_text("id: BAD-1\naffected: [\n  - {package: }\n")
    with pytest.raises(AdvisoryFileInvalid) as caught:
        AdvisoryDatabase.load(tmp_path)
    assert caught.value.path == bad
    assert "BAD-1.yaml" in str(caught.value)


@pytest.mark.parametrize(
    "record",
    [
        "- just a list\n",
        "affected: []\n",
        "id: X\naffected:\n- package: pypi-name-only\n",
        "id: X\naffected:\n- package: {ecosystem: PyPI, name: p}\n  versions: [1.0]\n",
    ],
)
def test_records_that_are_not_osv_shaped_are_refused(tmp_path: Path, record: str) -> None:
    (tmp_path / "X.yml").write_text(record)
    with pytest.raises(AdvisoryFileInvalid):
        AdvisoryDatabase.load(tmp_path)


def test_shipped_default_folder_loads() -> None:
    db = AdvisoryDatabase.load(DEFAULT_ADVISORIES)
    assert [a.id for a in db.vulnerabilities("idna", "3.6")] == ["PYSEC-2024-60"]
