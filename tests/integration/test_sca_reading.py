"""SCA and the bump over every dependency file, through the real sandbox and gate.

Advisory data is imported with `advisories import` from real OSV records (PyPA's idna record,
GitHub's lodash record), so its freshness is the importer's own; the clock of the check is
moved instead of the data. The hash test fetches idna's hashes from PyPI in the setup phase.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from codefactory.advisories import (
    DEFAULT_ADVISORIES,
    AdvisoryDatabase,
    import_advisories,
    index_path,
)
from codefactory.domain import ChangeKind, Task
from codefactory.engines import EngineError, NothingToDo
from codefactory.engines.dependency_bump import DependencyBumpEngine
from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace
from codefactory.verify.cache import MemoryVerifyCache
from codefactory.verify.gate import Gate
from codefactory.verify.sca import ADVISORIES_MISSING, ADVISORIES_STALE, UNREADABLE, ScaCheck
from tests.conftest import git

pytestmark = pytest.mark.usefixtures("bwrap_available")

BUMP = Task(kind=ChangeKind.BUMP_DEPENDENCY, title="Bump vulnerable pins", body="")
# GHSA-35jh-r3h4-6jhm as osv.dev serves it (trimmed to the fields OSV matching reads)
LODASH = {
    "id": "GHSA-35jh-r3h4-6jhm",
    "aliases": ["CVE-2021-23337"],
    "summary": "Command Injection in lodash",
    "modified": "2024-02-16T08:18:34Z",
    "affected": [
        {
            "package": {"ecosystem": "npm", "name": "lodash", "purl": "pkg:npm/lodash"},
            "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "4.17.21"}]}],
        }
    ],
}
# the hashes PyPI lists for idna 3.6 (sdist, wheel) and 3.7
IDNA_36 = (
    "sha256:9ecdbbd083b06798ae1e86adcbfe8ab1479cf864e4ee30fe4e46a003d12491ca",
    "sha256:c05567e9c24a6b9faaa835c4821bad0590fbb9d5779e7caa6e1cc4978e7eb24f",
)
IDNA_37 = (
    "sha256:028ff3aadf0609c1fd278d8ea3089299412a7a8b9bd005dd08b9f8285bcb5cfc",
    "sha256:82fee1fc78add43492d3a1898bfa6d8a904cc97d8427f683ed8e798d07761aa0",
)


@pytest.fixture
def synced(tmp_path_factory: pytest.TempPathFactory, osv_pypi_vulns: Path) -> AdvisoryDatabase:
    """PyPA's idna record and GitHub's lodash record, imported as `advisories import` does."""
    source = tmp_path_factory.mktemp("osv")
    shutil.copy(osv_pypi_vulns / "idna" / "PYSEC-2024-60.yaml", source / "PYSEC-2024-60.yaml")
    (source / "GHSA-35jh-r3h4-6jhm.yaml").write_text(yaml.safe_dump(LODASH))
    folder = tmp_path_factory.mktemp("advisories")
    import_advisories(source, folder)
    return AdvisoryDatabase.load(index_path(folder))


def repository(path: Path, files: dict[str, str], links: dict[str, str] | None = None) -> Path:
    """A git repository of `files` and symbolic links (`links`: path → target)."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    for name, target in (links or {}).items():
        os.symlink(target, path / name)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


@pytest.fixture
def sandbox(tmp_path: Path) -> BubblewrapSandbox:
    return BubblewrapSandbox(tmp_path / "work", tmp_path / "cache")


@pytest.fixture
def workspaces(sandbox: BubblewrapSandbox) -> Iterator[list[BubblewrapWorkspace]]:
    made: list[BubblewrapWorkspace] = []
    yield made
    for workspace in made:
        workspace.destroy()


def provision(
    sandbox: BubblewrapSandbox, made: list[BubblewrapWorkspace], repo: Path
) -> BubblewrapWorkspace:
    workspace = sandbox.provision(repo=repo, commit="HEAD", run_id=f"w{len(made)}")
    made.append(workspace)
    return workspace


def test_both_ecosystems_judged_through_a_link_and_the_bump_edits_the_target(
    tmp_path: Path,
    sandbox: BubblewrapSandbox,
    workspaces: list[BubblewrapWorkspace],
    synced: AdvisoryDatabase,
) -> None:
    repo = repository(
        tmp_path / "repo",
        {
            "deploy/requirements.txt": "# production\nidna==3.6\nrequests @ git+https://github.com/psf/requests@v2.32.3\n",
            "web/package-lock.json": '{\n  "lockfileVersion": 3,\n  "packages": {\n    "": {},\n'
            '    "node_modules/lodash": {\n      "version": "4.17.20"\n    }\n  }\n}\n',
        },
        links={"requirements.txt": "deploy/requirements.txt"},
    )
    workspace = provision(sandbox, workspaces, repo)
    check = ScaCheck(synced, max_age_days=7)

    before = check.run(workspace, workspace.changes())
    assert not before.passed
    assert sorted((f.rule, f.path, f.line) for f in before.findings) == [
        ("GHSA-35jh-r3h4-6jhm", "web/package-lock.json", 5),
        ("PYSEC-2024-60", "deploy/requirements.txt", 2),
    ]
    today = datetime.now(UTC).date().isoformat()
    assert "judged 2 exact pins (PyPI 1, npm 1) in 2 dependency files" in before.summary
    assert "1 requirements not pinned, not judged (1 vcs)" in before.summary
    assert f"advisory data: PyPI 1 records, synced {today} (0 days old)" in before.summary
    assert f"npm 1 records, synced {today}" in before.summary

    proposal = DependencyBumpEngine(synced).propose(BUMP, workspace, [])
    changed = {f.path: f.content for f in workspace.changes().files}
    assert changed == {
        "deploy/requirements.txt": b"# production\nidna==3.7\n"
        b"requests @ git+https://github.com/psf/requests@v2.32.3\n"
    }
    assert "lodash 4.17.20 in web/package-lock.json (a lock file)" in proposal.rationale
    after = check.run(workspace, workspace.changes())
    assert [f.rule for f in after.findings] == ["GHSA-35jh-r3h4-6jhm"]  # a re-lock fixes it


def test_an_untouched_unreadable_file_is_pre_existing_an_edited_or_new_one_blocks(
    tmp_path: Path, sandbox: BubblewrapSandbox, workspaces: list[BubblewrapWorkspace]
) -> None:
    broken = "idna==3.7\ndjango (4.2)\n"
    repo = repository(
        tmp_path / "repo",
        {"requirements.txt": "six==1.16.0\n", "legacy/requirements.txt": broken, "app.py": ""},
    )
    gate = Gate([ScaCheck(AdvisoryDatabase.load(DEFAULT_ADVISORIES), max_age_days=None)],
                sandbox=sandbox, cache=MemoryVerifyCache())  # fmt: skip

    untouched = provision(sandbox, workspaces, repo)
    untouched.write_file("app.py", b"print('unrelated')\n")
    [sca] = gate.run(untouched, untouched.changes(), repo=repo)
    assert sca.passed, sca.summary
    [finding] = sca.findings
    assert (finding.rule, finding.path, finding.line) == (UNREADABLE, "legacy/requirements.txt", 2)
    assert (finding.baseline_state, finding.blocking) == ("unchanged", False)
    assert "not a PEP 508 requirement" in finding.message

    edited = provision(sandbox, workspaces, repo)
    edited.write_file("legacy/requirements.txt", ("six==1.16.0\n" + broken).encode())
    [sca] = gate.run(edited, edited.changes(), repo=repo)
    assert not sca.passed
    states = sorted((f.baseline_state, f.blocking) for f in sca.findings)
    assert states == [("absent", False), ("new", True)]  # same spot, now in an edited file

    added = provision(sandbox, workspaces, repo)
    added.write_file("requirements-dev.txt", b"-r ../outside.txt\n")
    [sca] = gate.run(added, added.changes(), repo=repo)
    assert not sca.passed
    new = [f for f in sca.findings if f.baseline_state == "new"]
    assert [(f.path, f.blocking) for f in new] == [("requirements-dev.txt", True)]
    assert "leads outside the repository" in new[0].message


def test_missing_or_stale_advisory_data_blocks_whatever_the_base_had(
    tmp_path: Path,
    sandbox: BubblewrapSandbox,
    workspaces: list[BubblewrapWorkspace],
    synced: AdvisoryDatabase,
) -> None:
    repo = repository(
        tmp_path / "repo",
        {"requirements.txt": "idna==3.7\n", "yarn.lock": 'lodash@^4.17.21:\n  version "4.17.21"\n'},
    )
    workspace = provision(sandbox, workspaces, repo)
    workspace.write_file("app.py", b"print('unrelated')\n")
    later = datetime.now(UTC) + timedelta(days=9)
    stale = ScaCheck(synced, max_age_days=7, now=lambda: later)
    [sca] = Gate([stale], sandbox=sandbox).run(workspace, workspace.changes(), repo=repo)
    # the base commit has the same stale data: the gate blocks anyway
    assert not sca.passed
    assert [(f.rule, f.blocking) for f in sca.findings] == [
        (ADVISORIES_STALE, True),
        (ADVISORIES_STALE, True),
    ]
    pypi, npm = (f.message for f in sca.findings)
    assert pypi.startswith("advisories-stale: the PyPI advisory data was synced")
    assert "(9 days old), over the limit of 7 days" in pypi
    assert npm.startswith("advisories-stale: the npm advisory data was synced")

    assert (
        ScaCheck(synced, max_age_days=10, now=lambda: later)
        .run(workspace, workspace.changes())
        .passed
    )

    shipped = ScaCheck(AdvisoryDatabase.load(DEFAULT_ADVISORIES), max_age_days=7)
    result = shipped.run(workspace, workspace.changes())
    assert sorted(f.rule for f in result.findings) == [ADVISORIES_MISSING, ADVISORIES_STALE]
    missing = next(f for f in result.findings if f.rule == ADVISORIES_MISSING)
    assert missing.message.startswith("advisories-missing: no npm advisory record is loaded")
    assert "never synced" in result.summary and "advisories/data" in result.summary
    no_limit = ScaCheck(AdvisoryDatabase.load(DEFAULT_ADVISORIES), max_age_days=None)
    assert [f.rule for f in no_limit.run(workspace, workspace.changes()).findings] == [
        ADVISORIES_MISSING
    ]


def test_a_hash_pinned_bump_writes_the_index_hashes_or_refuses(
    tmp_path: Path,
    sandbox: BubblewrapSandbox,
    workspaces: list[BubblewrapWorkspace],
    synced: AdvisoryDatabase,
    osv_pypi_vulns: Path,
) -> None:
    pinned = f"idna==3.6 \\\n    --hash={IDNA_36[0]} \\\n    --hash={IDNA_36[1]}\n"
    repo = repository(tmp_path / "repo", {"requirements.txt": pinned})
    workspace = provision(sandbox, workspaces, repo)
    proposal = DependencyBumpEngine(synced).propose(BUMP, workspace, [])
    [change] = workspace.changes().files
    assert change.content == (
        f"idna==3.7 \\\n    --hash={IDNA_37[0]} \\\n    --hash={IDNA_37[1]}\n".encode()
    )
    assert "hashes from the index" in proposal.rationale
    with pytest.raises(
        NothingToDo, match=r"no known advisory affects idna 3\.7 in requirements\.txt: already safe"
    ):
        DependencyBumpEngine(synced).propose(
            Task(kind=ChangeKind.BUMP_DEPENDENCY, title="", body="", context={"package": "IDNA"}),
            workspace,
            [],
        )

    # an advisory whose fix is not on the index: no hashes, so no edit at all
    source = tmp_path / "osv"
    source.mkdir()
    record = yaml.safe_load((osv_pypi_vulns / "idna" / "PYSEC-2024-60.yaml").read_text())
    record["affected"][0]["ranges"][1]["events"][1]["fixed"] = "3.6.99"
    (source / "PYSEC-2024-60.yaml").write_text(yaml.safe_dump(record))
    import_advisories(source, tmp_path / "advisories")
    unknown = AdvisoryDatabase.load(index_path(tmp_path / "advisories"))
    fresh = provision(sandbox, workspaces, repo)
    with pytest.raises(EngineError, match=r"hash-pinned .* 3\.6\.99 could not be fetched"):
        DependencyBumpEngine(unknown).propose(BUMP, fresh, [])
    assert fresh.changes().is_empty
