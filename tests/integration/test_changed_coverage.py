"""Coverage of the changed lines, for real: the tests check's one pytest run in the sandbox,
under coverage, on the demo's sample service and on a src/ layout project; then the package
that QA reads (`evidence/coverage.json`, `summary.md`, `cab.json`'s test plan).

The setup phase installs each repository's requirements from the shared uv cache.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path

import pytest

from codefactory.config import Settings
from codefactory.domain import (
    Change,
    ChangeKind,
    CheckResult,
    Proposal,
    Run,
    RunState,
    Task,
    TriggerEvent,
)
from codefactory.factory import build_factory
from codefactory.package.builder import FolderPackageBuilder
from codefactory.package.port import PackageContents
from codefactory.runs.tickets import accept_ticket
from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace
from codefactory.sandbox.errors import SetupFailed
from codefactory.sandbox.port import Phase, Workspace
from codefactory.sandbox.setup import install_dependencies
from codefactory.verify.cache import MemoryVerifyCache
from codefactory.verify.changed_coverage import ChangedCoverage, changed_coverage_of
from codefactory.verify.gate import Gate
from codefactory.verify.junit import parse_junit
from codefactory.verify.tests import PytestCheck
from tests.acceptance.conftest import TEMPLATE
from tests.conftest import data_dir_sharing_cache, make_repo, sample_service

pytestmark = pytest.mark.usefixtures("bwrap_available")

CONFIG = ".codefactory/config.toml"
SAMPLE = files("codefactory") / "demo_template" / "sample-service"

# A src/ layout: the package under src/, installed editable by the setup phase; a repository
# coverage configuration that would hide every line if the factory read it.
CORE = (
    "def fee(amount, rate):\n"  # 1
    "    if amount <= 0:\n"  # 2
    '        raise ValueError("amount")\n'  # 3
    "    return round(amount * rate, 2)\n"  # 4
)
SRC_LAYOUT = {
    "pyproject.toml": (
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "fees"\nversion = "1.0"\n\n'
        '[project.optional-dependencies]\ntest = ["pytest"]\n\n'
        '[tool.setuptools.packages.find]\nwhere = ["src"]\n\n'
        '[tool.coverage.run]\nomit = ["src/*"]\n\n'
        '[tool.coverage.report]\nexclude_lines = [".*"]\n'
    ),
    ".coveragerc": "[run]\nomit = *\n[report]\nexclude_lines =\n    .*\n",
    "src/fees/__init__.py": "",
    "src/fees/core.py": CORE,
    "tests/test_fees.py": (
        "from fees.core import fee\n\n\ndef test_fee():\n    assert fee(100, 0.015) == 1.5\n"
    ),
}


def setup(workspace: Workspace) -> object:
    try:
        return install_dependencies(workspace)
    except SetupFailed as exc:
        pytest.skip(f"could not install the test repository's requirements: {exc}")


class World:
    def __init__(self, root: Path, repo: Path, uv_cache: Path, *, select: bool) -> None:
        self.sandbox = BubblewrapSandbox(root / "work", uv_cache)
        cache = MemoryVerifyCache()
        check = PytestCheck(timeout_s=120, cache=cache, select=select)
        self.gate = Gate([check], cache=cache, sandbox=self.sandbox, setup=setup)
        self.repo = repo
        self.workspace: BubblewrapWorkspace = self.sandbox.provision(
            repo=repo, commit="HEAD", run_id="change"
        )
        setup(self.workspace)

    def judge(self, edits: dict[str, str]) -> tuple[CheckResult, ChangedCoverage]:
        for path, text in edits.items():
            self.workspace.write_file(path, text.encode())
        [result] = self.gate.run(self.workspace, self.workspace.changes(), repo=self.repo)
        return result, changed_coverage_of([result])

    def close(self) -> None:
        self.workspace.destroy()
        self.sandbox.close()


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory, uv_cache: Path) -> Iterator[World]:
    root = tmp_path_factory.mktemp("sample")
    source = Path(str(SAMPLE))
    texts = {
        p.relative_to(source).as_posix(): p.read_text()
        for p in source.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    make_repo(root / "repo", texts)
    world = World(root, root / "repo", uv_cache, select=True)
    yield world
    world.close()


@pytest.fixture(scope="module")
def src_layout(tmp_path_factory: pytest.TempPathFactory, uv_cache: Path) -> Iterator[World]:
    root = tmp_path_factory.mktemp("src-layout")
    make_repo(root / "repo", SRC_LAYOUT)
    world = World(root, root / "repo", uv_cache, select=False)
    yield world
    world.close()


def hostnames(sample: World) -> str:
    return (sample.repo / "service" / "hostnames.py").read_text()


def test_the_sample_service_change_names_each_changed_line_and_whether_it_ran(
    sample: World,
) -> None:
    text = hostnames(sample)
    changed = text.replace(
        "return idna.decode(hostname)\n",
        "name = hostname.strip()\n    return idna.decode(name)\n",
    ) + (
        "\n\ndef is_ascii(hostname: str) -> bool:\n"
        '    """Whether the host name needs no encoding."""\n'
        "    return hostname.isascii()  # pragma: no cover\n"
    )
    result, coverage = sample.judge({"service/hostnames.py": changed})
    assert result.passed, result.summary
    assert parse_junit(result.evidence).tests >= 1
    assert coverage.measured, coverage.reason
    lines = changed.splitlines()
    at = {text: n for n, text in enumerate(lines, start=1)}
    strip = at["    name = hostname.strip()"]
    decode = at["    return idna.decode(name)"]
    define = at["def is_ascii(hostname: str) -> bool:"]
    body = at["    return hostname.isascii()  # pragma: no cover"]
    entry = coverage.files["service/hostnames.py"]
    assert entry.changed_lines == (strip, decode, define - 2, define - 1, define, define + 1, body)
    # the docstring and blank lines are no statements; a pragma hides nothing
    assert entry.executable == (strip, decode, define, body)
    assert entry.covered == (strip, decode, define)  # the def runs at import
    assert entry.missed == (body,)
    summary = coverage.summary_line()
    assert summary == f"changed lines covered: 3 of 4 (75%); missed: service/hostnames.py:{body}"
    assert coverage.scope.startswith("whole suite (service/hostnames.py:")  # a new function


def test_a_selected_run_measures_the_changed_body(sample: World) -> None:
    text = hostnames(sample)
    changed = text.replace(
        "    return idna.decode(hostname)\n",
        "    if not hostname:\n        return hostname\n    return idna.decode(hostname)\n",
    )
    result, coverage = sample.judge({"service/hostnames.py": changed})
    assert result.passed, result.summary
    first = changed.splitlines().index("    if not hostname:") + 1
    entry = coverage.files["service/hostnames.py"]
    assert (entry.covered, entry.missed) == ((first,), (first + 1,))
    assert "test selector(s)" in coverage.scope
    assert "tests/test_hostnames.py::test_round_trip" in coverage.scope


def test_a_src_layout_whose_coverage_config_would_hide_everything_is_measured_anyway(
    src_layout: World,
) -> None:
    changed = CORE.replace(
        "    return round(amount * rate, 2)\n",
        "    total = round(\n        amount * rate,\n        2,\n    )\n"
        "    if total > 1000:\n        return 1000\n    return total\n",
    )
    readme = "# fees\n"
    result, coverage = src_layout.judge({"src/fees/core.py": changed, "README.md": readme})
    assert result.passed, result.summary
    assert coverage.measured, coverage.reason
    entry = coverage.files["src/fees/core.py"]
    # lines 4-7 are one statement written over four lines: each counts, and each ran
    assert entry.changed_lines == (4, 5, 6, 7, 8, 9, 10)
    assert entry.executable == (4, 5, 6, 7, 8, 9, 10)
    assert entry.covered == (4, 5, 6, 7, 8, 10)
    assert entry.missed == (9,)
    assert coverage.not_measured == {"README.md": "not Python source"}
    assert coverage.scope.startswith("whole suite")
    assert coverage.summary_line() == (
        "changed lines covered: 6 of 7 (85.71%); missed: src/fees/core.py:9"
    )


def test_a_coverage_floor_set_by_the_operator_blocks_a_change_under_it(src_layout: World) -> None:
    changed = CORE + "\n\ndef waive(amount):\n    return 0\n"
    floored = Gate(
        [PytestCheck(timeout_s=120, select=False, min_changed_line_coverage=60)],
        sandbox=src_layout.sandbox,
        setup=setup,
    )
    src_layout.workspace.write_file("src/fees/core.py", changed.encode())
    [result] = floored.run(
        src_layout.workspace, src_layout.workspace.changes(), repo=src_layout.repo
    )
    assert not result.passed
    [finding] = [f for f in result.findings if f.blocking]
    assert finding.rule == "changed-lines-under-covered"
    assert finding.message == (
        "changed lines covered: 1 of 2 (50%), under the minimum of 60%; missed: src/fees/core.py:8"
    )
    [plain] = src_layout.gate.run(
        src_layout.workspace, src_layout.workspace.changes(), repo=src_layout.repo
    )
    assert plain.passed, plain.summary  # without a floor, coverage is evidence only


def test_a_repository_measuring_its_own_coverage_is_not_measured_rather_than_undercounted(
    tmp_path: Path, uv_cache: Path
) -> None:
    files = SRC_LAYOUT | {
        "pyproject.toml": SRC_LAYOUT["pyproject.toml"].replace(
            'test = ["pytest"]', 'test = ["pytest", "pytest-cov"]'
        )
        + '\n[tool.pytest.ini_options]\naddopts = "--cov=fees"\n'
    }
    make_repo(tmp_path / "repo", files)
    world = World(tmp_path, tmp_path / "repo", uv_cache, select=False)
    try:
        result, coverage = world.judge(
            {"src/fees/core.py": CORE + "\n\ndef spare():\n    return 1\n"}
        )
    finally:
        world.close()
    assert result.passed, result.summary  # the tests themselves are judged as ever
    assert not coverage.measured
    assert coverage.reason.startswith("another coverage measurement started inside the test run")


def test_a_suite_that_cannot_run_is_not_measured_and_says_why(src_layout: World) -> None:
    broken = "from fees.core import missing_name\n\n\ndef test_fee():\n    pass\n"
    result, coverage = src_layout.judge(
        {"src/fees/core.py": CORE + "\n\ndef spare():\n    return 1\n",
         "tests/test_fees.py": broken}
    )  # fmt: skip
    assert not result.passed
    assert not coverage.measured
    assert coverage.reason.startswith("the tests did not run to the end: ")
    assert "missing_name" in coverage.reason
    assert coverage.summary_line().startswith("changed lines covered: not measured (")
    assert "tests/test_fees.py" in coverage.not_measured  # a test file, listed apart


def test_a_test_command_that_is_not_pytest_is_not_measured(src_layout: World) -> None:
    config = b'[test]\ncommand = ["python", "-c", "print(1)"]\n'
    src_layout.workspace.write_file(CONFIG, config)
    try:
        _, coverage = src_layout.judge({"tests/test_fees.py": SRC_LAYOUT["tests/test_fees.py"]})
    finally:
        src_layout.workspace.exec(["/usr/bin/rm", "-f", CONFIG], phase=Phase.CHECK, timeout_s=30)
    assert not coverage.measured
    assert coverage.reason == (
        "the test command `python -c print(1)` is not pytest, which coverage measures"
    )


def test_the_package_carries_the_coverage_for_qa(sample: World, tmp_path: Path) -> None:
    changed = hostnames(sample) + "\n\ndef unused():\n    return 1\n"
    result, _ = sample.judge({"service/hostnames.py": changed})
    body = len(changed.splitlines())
    contents = package_contents(sample.workspace.changes(), (result,))
    FolderPackageBuilder(tmp_path).build(contents)
    folder = tmp_path / "r-cov"
    document = json.loads((folder / "evidence" / "coverage.json").read_text())
    assert document["format"] == "codefactory.changed-coverage/1"
    assert document["status"] == "measured"
    assert document["files"]["service/hostnames.py"]["missed"] == [body]
    assert document["totals"] == {
        "changed_lines": 4, "executable": 2, "covered": 1, "missed": 1, "percent": 50.0,
    }  # fmt: skip
    line = f"changed lines covered: 1 of 2 (50%); missed: service/hostnames.py:{body}"
    assert line in (folder / "summary.md").read_text()
    assert line in json.loads((folder / "cab.json").read_text())["test_plan"]


def package_contents(change: Change, results: tuple[CheckResult, ...]) -> PackageContents:
    now = datetime.now(UTC)
    kind = ChangeKind.GENERAL_CHANGE
    run = Run(
        id="r-cov", trigger_id="t-1", kind=kind, repository="sample-service", sponsor="alice",
        agent_id="agent:coder", state=RunState.VERIFIED, reason="", base_commit="b" * 40,
        head_commit="a" * 40, branch="factory/r-cov", package_dir="", created_at=now,
    )  # fmt: skip
    trigger = TriggerEvent(
        source="jira", kind=kind, external_id="SVC-101", actor="bob",
        repository="sample-service", title="Add a helper", body="", received_at=now,
        payload_digest="sha256:00",
    )  # fmt: skip
    return PackageContents(
        run=run, trigger=trigger, proposal=Proposal(engine="agent", engine_version="1",
        rationale="a helper"), results=results, rounds=1, patch="", commit="a" * 40,
        branch="factory/r-cov", forge_repository="/srv/forge/sample.git", change=change,
    )  # fmt: skip


def helped(text: str) -> str:
    text = text.replace("import os\n\n", "").replace(
        "    return idna.decode(hostname)\n",
        "    ascii_name = hostname.strip()\n    return idna.decode(ascii_name)\n",
    )
    return (
        text + '\n\ndef label_count(hostname: str) -> int:\n    return len(hostname.split("."))\n'
    )


class HelperEngine:
    """Removes the unused import the lint ticket names, changes one body and adds a helper
    no test calls: the package must say which changed lines ran and which did not."""

    name = "test:helper"
    version = "0"

    def propose(
        self,
        task: Task,
        workspace: Workspace,
        feedback: Sequence[CheckResult],
        session: object = None,
    ) -> Proposal:
        text = (workspace.read_file("service/hostnames.py") or b"").decode()
        workspace.write_file("service/hostnames.py", helped(text).encode())
        return Proposal(engine=self.name, engine_version=self.version, rationale="helper")


def test_a_run_packages_the_coverage_of_its_changed_lines(tmp_path: Path, uv_cache: Path) -> None:
    factory = build_factory(Settings(data_dir=data_dir_sharing_cache(tmp_path / "data", uv_cache)))
    factory.loop.engines = {"recipe:lint-fix": HelperEngine()}
    repo = sample_service(tmp_path / "sample-service")
    payload = (TEMPLATE / "tickets" / "SVC-102.json").read_bytes()
    run = accept_ticket(factory, payload=payload, repo=repo)
    assert run.state is RunState.IN_REVIEW, run.reason
    folder = Path(factory.store.require_run(run.id).package_dir)
    assert '+    return len(hostname.split("."))' in (folder / "change.patch").read_text()
    head = helped((repo / "service" / "hostnames.py").read_text()).splitlines()
    at = {text: n for n, text in enumerate(head, start=1)}
    document = json.loads((folder / "evidence" / "coverage.json").read_text())
    entry = document["files"]["service/hostnames.py"]
    body = at['    return len(hostname.split("."))']
    define = at["def label_count(hostname: str) -> int:"]
    # the two new body lines ran (test_round_trip); the helper's def ran at import, its body
    # never; the removed import is no line of the head
    strip, decode = (
        at["    ascii_name = hostname.strip()"],
        at["    return idna.decode(ascii_name)"],
    )
    assert entry["executable"] == [strip, decode, define, body]
    assert (entry["covered"], entry["missed"]) == ([strip, decode, define], [body])
    line = f"changed lines covered: 3 of 4 (75%); missed: service/hostnames.py:{body}"
    assert line in (folder / "summary.md").read_text()
    assert line in json.loads((folder / "cab.json").read_text())["test_plan"]
