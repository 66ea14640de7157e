"""Agent CLIs as engines, end to end: each real CLI (from its engine image) runs in a real
bubblewrap workspace, reaches the real model gateway (TLS with the factory CA, through the
egress proxy) whose upstream is the replay server playing a script in that CLI's own tool
names. The workspace change, the stored stream, the gateway's records and the hosts the
CLI tried to reach are checked; so are the budget's 429, a hang, garbage and a crash.

Images are built once into `~/.cache/codefactory-tests/engine-images` (hundreds of MB, a few
minutes the first time) and reused by later sessions."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from codefactory.domain import ChangeKind, CheckResult, Finding, Severity, Task
from codefactory.engines.cli import (
    ADAPTERS,
    CliEngine,
    CliExited,
    CliNoResult,
    CliTimedOut,
    ImageBuildFailed,
    ModelBudgetSpent,
    NoModelAccess,
    cli_engine,
)
from codefactory.engines.cli.adapter import Launch, StreamReading
from codefactory.engines.cli.image import ImageRecipe, build_image
from codefactory.engines.gateway import ModelCall, ModelGateway
from codefactory.engines.session import Budget, EngineSession, ModelAccess
from codefactory.engines.settings import GatewaySettings
from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace
from codefactory.sandbox.egress import EgressAttempt
from tests.conftest import make_repo

pytestmark = [pytest.mark.engines_cli, pytest.mark.usefixtures("bwrap_available")]

TRANSCRIPTS = Path(__file__).parents[1] / "fixtures" / "transcripts"
IMAGE_CACHE = Path.home() / ".cache" / "codefactory-tests"
GREET = "def greet(name):\n    return 'Hello, ' + nam\n"
FIXED = b"def greet(name):\n    return 'Hello, ' + name\n"
TASK = Task(
    kind=ChangeKind.GENERAL_CHANGE,
    title="greet() raises NameError",
    body="greet.py returns 'Hello, ' + nam: fix the typo.",
)

SIDE_TRAFFIC = {
    "cli:codex": {("github.com", 443), ("api.github.com", 443), ("chatgpt.com", 443)},
    "cli:claude-code": set(),
    "cli:mini-swe-agent": set(),
    "cli:opencode": {("registry.npmjs.org", 443)},
}
"""Every host each CLI tried besides the gateway during a scripted run, all denied. A new
host after an engine upgrade fails `test_a_scripted_run_fixes_the_file_...`: look at it,
then pin it here and in docs/agent-clis.md."""


@pytest.fixture(scope="session")
def images() -> Path:
    """Every CLI's image, built once into a cache that outlives the session."""
    for adapter in ADAPTERS.values():
        build_image(adapter.recipe, IMAGE_CACHE)
    return IMAGE_CACHE


@dataclass
class Harness:
    """A gateway over a replay script, a sandbox workspace, and what each recorded."""

    gateway: ModelGateway
    workspace: BubblewrapWorkspace
    calls: list[ModelCall] = field(default_factory=list)
    attempts: list[EgressAttempt] = field(default_factory=list)
    evidence: dict[str, bytes] = field(default_factory=dict)
    folder: Path = Path()

    def session(self, engine: CliEngine, budget: Budget, *, round: int = 1) -> EngineSession:
        model = json.loads(self.gateway.upstream_script.read_text()).get("model", "replay")
        credential = self.gateway.grant(
            "run-cli", "agent-cli", "alice@example.com", engine.name, model, budget
        )
        access = self.gateway.access(credential, model, engine.adapter.protocol)
        access = dataclasses.replace(access, egress_address=self.gateway.resolve_entry[1])
        return EngineSession(
            run_id="run-cli", round=round, model=access, budget=budget, evidence=self.keep
        )

    def keep(self, name: str, content: bytes) -> Path:
        self.evidence[name] = content
        path = self.folder / name
        path.write_bytes(content)
        return path

    def side_traffic(self) -> set[tuple[str, int]]:
        gateway = self.gateway.settings.host
        assert all(a.allowed for a in self.attempts if a.host == gateway)
        assert not any(a.allowed for a in self.attempts if a.host != gateway)
        return {(a.host, a.port) for a in self.attempts if a.host != gateway}


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Callable[[Path], Harness]]:
    made: list[tuple[ModelGateway, BubblewrapSandbox, BubblewrapWorkspace]] = []

    def make(script: Path) -> Harness:
        calls: list[ModelCall] = []
        gateway = ModelGateway(
            GatewaySettings(upstream=f"replay:{script}", retries=0),
            state_dir=tmp_path / "gateway",
            traffic_dir=tmp_path / "traffic",
            on_call=calls.append,
        )
        gateway.upstream_script = script  # type: ignore[attr-defined]
        gateway.start()
        make_repo(tmp_path / "repo", {"greet.py": GREET})
        sandbox = BubblewrapSandbox(tmp_path / "work", tmp_path / "cache")
        attempts: list[EgressAttempt] = []
        workspace = sandbox.provision(
            repo=tmp_path / "repo", commit="HEAD", run_id="run-cli", on_egress=attempts.append
        )
        made.append((gateway, sandbox, workspace))
        (tmp_path / "evidence").mkdir()
        return Harness(
            gateway, workspace, calls=calls, attempts=attempts, folder=tmp_path / "evidence"
        )

    yield make
    for gateway, sandbox, workspace in made:
        workspace.destroy()
        sandbox.close()
        gateway.stop()


def script_of(name: str) -> Path:
    return TRANSCRIPTS / f"cli_{name.removeprefix('cli:').replace('-', '_')}.json"


@pytest.mark.timeout(900)  # the first session builds the images
@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_a_scripted_run_fixes_the_file_stores_the_stream_and_tries_only_pinned_hosts(
    images: Path, harness: Callable[[Path], Harness], name: str
) -> None:
    engine = cli_engine(name, images)
    h = harness(script_of(name))
    proposal = engine.propose(TASK, h.workspace, [], h.session(engine, Budget(wall_s=120)))

    change = h.workspace.changes()
    assert [(f.path, f.content) for f in change.files] == [("greet.py", FIXED)]
    assert proposal.engine == name and proposal.engine_version == engine.adapter.recipe.version
    if name != "cli:mini-swe-agent":  # mini's submission is the marker command's output
        assert proposal.rationale.startswith("Fixed the typo in greet.py")
    stream = h.evidence[engine.adapter.stream_name]
    assert stream and f"{engine.adapter.name}.stderr.log" in h.evidence
    assert proposal.details["evidence"][0].endswith(engine.adapter.stream_name)
    assert engine.adapter.read(stream).final_message is not None
    assert [c.status for c in h.calls] == [200] * len(h.calls) and len(h.calls) >= 3
    assert {c.run_id for c in h.calls} == {"run-cli"}
    assert h.side_traffic() == SIDE_TRAFFIC[name]


# opencode retries a 429 for about 75 s whatever the gateway says: too slow to run here;
# its reading of the error event (`error.data.statusCode`) is checked below
@pytest.mark.parametrize("name", sorted(set(ADAPTERS) - {"cli:opencode"}))
def test_the_gateways_429_for_a_spent_budget_ends_the_engine_with_its_reason(
    images: Path, harness: Callable[[Path], Harness], name: str
) -> None:
    engine = cli_engine(name, images)
    h = harness(script_of(name))
    with pytest.raises(ModelBudgetSpent) as caught:
        engine.propose(TASK, h.workspace, [], h.session(engine, Budget(requests=1, wall_s=120)))
    assert caught.value.reason == "budget-spent" and caught.value.engine == name
    assert [c.status for c in h.calls][:2] == [200, 429]
    assert engine.adapter.stream_name in h.evidence  # kept, though it failed


def test_a_cli_that_hangs_is_killed_by_its_wall_clock_with_everything_it_started(
    images: Path, harness: Callable[[Path], Harness]
) -> None:
    engine = cli_engine("cli:claude-code", images)
    h = harness(TRANSCRIPTS / "cli_claude_code_hang.json")
    with pytest.raises(CliTimedOut) as caught:
        engine.propose(TASK, h.workspace, [], h.session(engine, Budget(wall_s=8)))
    assert caught.value.reason == "wall-clock"
    assert "claude-code.jsonl" in h.evidence
    assert _processes_running("time.sleep(597.25)") == []  # the tool's command died with the CLI
    assert [c.status for c in h.calls] == [200]  # it had asked for the command, then hung


def _processes_running(needle: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if needle.encode() in cmdline and entry.name != str(os.getpid()):
                found.append(int(entry.name))
    return found


# --- the judge, with stand-in CLIs run by the same runner in the same sandbox --------------


@dataclass
class StandIn:
    """A real adapter whose command is replaced by a shell line (garbage, a crash)."""

    inner: object
    line: str
    name: str = "stand-in"
    protocol: str = "anthropic-messages"
    stream_name: str = "stand-in.jsonl"

    @property
    def recipe(self):  # type: ignore[no-untyped-def]
        return self.inner.recipe  # type: ignore[attr-defined]

    def launch(
        self,
        prompt: str,
        model: ModelAccess,
        allowed_tools: Sequence[str],
        *,
        context_mcp: bool = False,
    ) -> Launch:
        return Launch(command=("/usr/bin/sh", "-c", self.line))

    def read(self, stream: bytes) -> StreamReading:
        return self.inner.read(stream)  # type: ignore[attr-defined, no-any-return]


@pytest.mark.parametrize(
    ("line", "error", "reason"),
    [
        ("echo 'Welcome!'; echo '<html>oops</html>'", CliNoResult, "garbage"),
        ('echo \'{"type": "system", "subtype": "init"}\'', CliNoResult, "no-result"),
        ("echo 'segfault' >&2; exit 3", CliExited, "exit-status"),
    ],
)
def test_garbage_a_stream_without_a_result_and_a_crash_each_have_their_reason(
    images: Path,
    harness: Callable[[Path], Harness],
    line: str,
    error: type[Exception],
    reason: str,
) -> None:
    inner = ADAPTERS["cli:claude-code"]()
    engine = CliEngine(StandIn(inner, line), images)  # type: ignore[arg-type]
    h = harness(script_of("cli:claude-code"))
    with pytest.raises(error) as caught:
        engine.propose(TASK, h.workspace, [], h.session(engine, Budget(wall_s=30)))
    assert getattr(caught.value, "reason", None) == reason
    assert "stand-in.jsonl" in h.evidence
    if reason == "exit-status":
        assert "exit status 3: segfault" in str(caught.value)


def test_without_a_gateway_the_engine_refuses_before_anything_runs(
    tmp_path: Path, images: Path
) -> None:
    engine = cli_engine("cli:codex", images)
    with pytest.raises(NoModelAccess, match="no-model"):
        engine.propose(TASK, None, [], EngineSession(run_id="r"))  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="cli:codex"):
        cli_engine("cli:goose", images)


def test_the_prompt_carries_the_ticket_instructions_and_failed_checks(
    images: Path, harness: Callable[[Path], Harness]
) -> None:
    result_line = 'echo \'{"type":"result","subtype":"success","result":"ok"}\''
    inner = ADAPTERS["cli:claude-code"]()

    class Recording(StandIn):
        seen: str = ""

        def launch(
            self,
            prompt: str,
            model: ModelAccess,
            allowed_tools: Sequence[str],
            *,
            context_mcp: bool = False,
        ) -> Launch:
            Recording.seen = prompt
            return Launch(command=("/usr/bin/sh", "-c", result_line))

    engine = CliEngine(Recording(inner, ""), images)  # type: ignore[arg-type]
    h = harness(script_of("cli:claude-code"))
    h.workspace.write_file("AGENTS.md", b"Run pytest before you finish.\n")
    failed = CheckResult(
        check="tests",
        passed=False,
        summary="1 failed",
        findings=(
            Finding(
                check="tests",
                rule="test_greet",
                message="AssertionError: greet('Ada') == 'Hello, Ada'",
                severity=Severity.HIGH,
                path="test_greet.py",
            ),
        ),
    )
    proposal = engine.propose(TASK, h.workspace, [failed], h.session(engine, Budget(wall_s=30)))
    assert proposal.rationale == "ok"
    assert "greet() raises NameError" in Recording.seen
    assert "Run pytest before you finish." in Recording.seen
    assert "tests: 1 failed" in Recording.seen
    assert "[test_greet] AssertionError: greet('Ada') == 'Hello, Ada'" in Recording.seen
    assert "call finish" not in Recording.seen


# --- engine images ----------------------------------------------------------------------


def test_an_image_is_built_once_and_its_manifest_cites_what_was_installed(images: Path) -> None:
    recipe = ADAPTERS["cli:codex"].recipe
    first = build_image(recipe, images)
    again = build_image(recipe, images)
    assert again.root == first.root == images / "engine-images" / recipe.key
    assert (first.root / ".complete").is_file()
    installed = first.manifest["installed"]
    assert installed["@openai/codex"]["version"] == "0.169.0"
    assert installed["@openai/codex"]["integrity"].startswith("sha512-")
    assert first.manifest["runtime"].startswith("node v")
    assert not first.root.stat().st_mode & 0o022  # nobody but its owner may change it
    mini = build_image(ADAPTERS["cli:mini-swe-agent"].recipe, images).manifest["installed"]
    assert mini["mini-swe-agent"]["version"] == "2.4.6"
    assert mini["litellm"]["version"] not in ("1.82.7", "1.82.8")


def test_a_failed_build_names_the_engine_and_leaves_no_image(tmp_path: Path) -> None:
    recipe = ImageRecipe(name="broken", kind="python", package="no such package!", version="1")
    with pytest.raises(ImageBuildFailed) as caught:
        build_image(recipe, tmp_path)
    assert caught.value.reason == "image-build" and caught.value.engine == "broken"
    assert "uv" in str(caught.value)
    assert [p.name for p in (tmp_path / "engine-images").iterdir()] == [f".{recipe.key}.lock"]


def test_opencode_reads_the_status_of_the_call_that_failed() -> None:
    # the error event opencode 1.18.33 printed when the gateway answered 429 (abridged)
    event = {
        "type": "error",
        "error": {
            "name": "APIError",
            "data": {"message": "run budget spent: requests 1/1", "statusCode": 429},
        },
    }
    stream = json.dumps({"type": "step_start", "part": {}}).encode() + b"\n"
    reading = ADAPTERS["cli:opencode"]().read(stream + json.dumps(event).encode() + b"\n")
    assert (reading.http_status, reading.error) == (429, "run budget spent: requests 1/1")
    assert reading.final_message is None and reading.events == 2
