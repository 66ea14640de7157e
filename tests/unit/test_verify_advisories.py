"""`advisories import` (folders and OSV zip exports) and lock files, on real PyPA data."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from codefactory.advisories import (
    AdvisoryDatabase,
    AdvisoryImportFailed,
    LockFileInvalid,
    find_locked,
    import_advisories,
    index_path,
    is_lock_file,
)
from codefactory.advisories.importer import default_advisories


@pytest.fixture
def some_real_records(osv_pypi_vulns: Path, tmp_path: Path) -> Path:
    """idna, requests and jinja2 advisories as PyPA publishes them (YAML)."""
    folder = tmp_path / "mirror"
    for package in ("idna", "requests", "jinja2"):
        shutil.copytree(osv_pypi_vulns / package, folder / package)
    return folder


def test_a_folder_import_is_used_by_default_and_matches_as_the_folder_does(
    some_real_records: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    report = import_advisories(some_real_records, data / "advisories")
    assert report.records == report.pypi_records > 10 and report.withdrawn == 0
    assert default_advisories(data, Path("/shipped")) == index_path(data / "advisories")
    imported = AdvisoryDatabase.load(index_path(data / "advisories"))
    direct = AdvisoryDatabase.load(some_real_records)
    assert [a.id for a in imported.vulnerabilities("idna", "3.6")] == ["PYSEC-2024-60"]
    for name, version in (("requests", "2.19.0"), ("jinja2", "2.10"), ("idna", "3.7")):
        assert imported.vulnerabilities(name, version) == direct.vulnerabilities(name, version)
    assert imported.digest == report.digest and imported.digest != direct.digest
    manifest = json.loads((data / "advisories" / "manifest.json").read_text())
    assert manifest["pypi_records"] == report.pypi_records


def test_an_osv_zip_export_imports_and_skips_withdrawn_and_other_ecosystems(
    some_real_records: Path, tmp_path: Path
) -> None:
    export = tmp_path / "all.zip"
    with zipfile.ZipFile(export, "w") as archive:
        for path in sorted(some_real_records.rglob("*.yaml")):
            archive.writestr(f"{path.stem}.yaml", path.read_text())
        archive.writestr("GHSA-npm.json", json.dumps(_record("GHSA-1", "npm", "left-pad")))
        archive.writestr(
            "PYSEC-W.json", json.dumps({**_record("PYSEC-W", "PyPI", "idna"), "withdrawn": "x"})
        )
    report = import_advisories(export, tmp_path / "db")
    assert report.withdrawn == 1 and report.records == report.pypi_records + 2
    db = AdvisoryDatabase.load(index_path(tmp_path / "db"))
    assert [a.id for a in db.vulnerabilities("idna", "3.6")] == ["PYSEC-2024-60"]


def test_a_malformed_record_refuses_the_whole_import_naming_it(
    some_real_records: Path, tmp_path: Path
) -> None:
    (some_real_records / "idna" / "BROKEN-1.yaml").write_text("id: [unclosed\n")
    target = tmp_path / "db"
    with pytest.raises(AdvisoryImportFailed, match="BROKEN-1.yaml"):
        import_advisories(some_real_records, target)
    assert not index_path(target).exists()
    (some_real_records / "idna" / "BROKEN-1.yaml").write_text("id: X\naffected: 3\n")
    with pytest.raises(AdvisoryImportFailed, match="`affected` must be a list"):
        import_advisories(some_real_records, target)
    with pytest.raises(AdvisoryImportFailed, match="no such file"):
        import_advisories(tmp_path / "missing", target)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AdvisoryImportFailed, match="no OSV records"):
        import_advisories(tmp_path / "empty", target)


UV_LOCK = """version = 1
requires-python = ">=3.11"

[[package]]
name = "idna"
version = "3.6"
source = { registry = "https://pypi.org/simple" }

[[package]]
name = "service"
version = "0.1.0"
source = { editable = "." }
"""
POETRY_LOCK = """[[package]]
name = "requests"
version = "2.19.0"
description = "HTTP"

[[package]]
name = "mylib"
version = "1.0"

[package.source]
type = "git"
url = "https://example.com/mylib.git"
"""
PIPFILE_LOCK = json.dumps(
    {
        "_meta": {},
        "default": {"jinja2": {"version": "==2.10", "hashes": []}, "local": {"path": "."}},
        "develop": {},
    },
    indent=4,
)
PYLOCK = '[[packages]]\nname = "idna"\nversion = "3.7"\n'


def test_lock_files_give_their_resolved_versions_with_lines() -> None:
    assert [(p.name, p.version, p.line) for p in find_locked("uv.lock", UV_LOCK)] == [
        ("idna", "3.6", 5)
    ]
    assert [(p.name, p.version, p.line) for p in find_locked("poetry.lock", POETRY_LOCK)] == [
        ("requests", "2.19.0", 2)
    ]
    assert [(p.name, p.version) for p in find_locked("Pipfile.lock", PIPFILE_LOCK)] == [
        ("jinja2", "2.10")
    ]
    assert [(p.name, p.version) for p in find_locked("pylock.toml", PYLOCK)] == [("idna", "3.7")]
    assert is_lock_file("pylock.dev.toml") and not is_lock_file("requirements.txt")


def test_an_unparseable_lock_file_is_a_named_error() -> None:
    with pytest.raises(LockFileInvalid, match="uv.lock"):
        find_locked("uv.lock", "[[package]\nname = ")
    with pytest.raises(LockFileInvalid, match="Pipfile.lock"):
        find_locked("Pipfile.lock", "{not json")
    with pytest.raises(LockFileInvalid, match="no name"):
        find_locked("uv.lock", '[[package]]\nversion = "1"\n')


def _record(record_id: str, ecosystem: str, name: str) -> dict[str, object]:
    return {
        "id": record_id,
        "affected": [
            {
                "package": {"ecosystem": ecosystem, "name": name},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
            }
        ],
    }


def test_a_damaged_index_is_a_named_error(some_real_records: Path, tmp_path: Path) -> None:
    from codefactory.advisories import AdvisoryFileInvalid

    index = index_path(tmp_path / "db")
    import_advisories(some_real_records, tmp_path / "db")
    body = json.loads(index.read_text())
    body["packages"]["idna"][0]["affected"] = "garbage"
    index.write_text(json.dumps(body))
    db = AdvisoryDatabase.load(index)  # loads lazily: the damage shows when idna is judged
    with pytest.raises(AdvisoryFileInvalid, match="idna record 0"):
        db.vulnerabilities("idna", "3.6")
    index.write_text("[1, 2")
    with pytest.raises(AdvisoryFileInvalid, match="osv-index.json"):
        AdvisoryDatabase.load(index)
