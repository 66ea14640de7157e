"""Benchmark: the gate's latency for a one-file change on a repository of 100k+ lines.

Lint + SAST + secrets + SCA, each with its base-commit comparison, inside the real sandbox,
against the same tools run over the whole repository in the same process (the ratio is the
figure that travels between machines). Two latencies: a change to a file whose base findings
are not cached yet (the first change to that file on this commit) and one whose are.

Run with `make bench B=gate` or `.venv/bin/python benchmarks/bench_gate.py`.
"""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codefactory.advisories import DEFAULT_ADVISORIES, AdvisoryDatabase  # noqa: E402
from codefactory.domain import Change, FileChange  # noqa: E402
from codefactory.sandbox.bubblewrap import BubblewrapSandbox  # noqa: E402
from codefactory.verify.cache import MemoryVerifyCache  # noqa: E402
from codefactory.verify.gate import Gate  # noqa: E402
from codefactory.verify.lint import RuffCheck  # noqa: E402
from codefactory.verify.port import Check  # noqa: E402
from codefactory.verify.sast import SastCheck  # noqa: E402
from codefactory.verify.sca import ScaCheck  # noqa: E402
from codefactory.verify.secrets import SecretsCheck  # noqa: E402

MODULES = 400
FUNCTIONS = 24  # about 11 lines each: 400 * 24 * 11 > 100k lines
CHANGES = 15


def module_source(index: int, rng: random.Random) -> str:
    lines = [f'"""Generated module {index}: ledger arithmetic."""', "", "import math", ""]
    if index % 25 == 0:  # a few pre-existing findings, as real code has
        lines += [
            "import subprocess",
            "",
            "",
            "def shell(cmd):",
            "    return subprocess.call(cmd, shell=True)",
            "",
        ]
    for f in range(FUNCTIONS):
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        lines += [
            "",
            f"def ledger_{index}_{f}(amount, rate={a}):",
            f'    """Post an amount at rate {a} with fee {b}."""',
            f"    fee = {b}",
            "    if amount < 0:",
            "        raise ValueError('negative amount')",
            "    total = amount * rate / 100 + fee",
            "    for step in range(3):",
            "        total = math.floor(total + step)",
            "    return total",
            "",
        ]
    return "\n".join(lines) + "\n"


def make_repository(root: Path) -> tuple[Path, int]:
    rng = random.Random(6)
    repo = root / "bigrepo"
    (repo / "ledger").mkdir(parents=True)
    (repo / "ledger" / "__init__.py").write_text("")
    total = 0
    for index in range(MODULES):
        text = module_source(index, rng)
        total += text.count("\n")
        (repo / "ledger" / f"mod_{index:03}.py").write_text(text)
    (repo / "requirements.txt").write_text("idna==3.6\nrich==13.7.0\nrequests==2.32.3\n")
    (repo / "pyproject.toml").write_text('[tool.ruff.lint]\nselect = ["E", "F", "W"]\n')
    git = ["git", "-C", str(repo), "-c", "user.name=b", "-c", "user.email=b@example.com"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "base"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    return repo, total


def cheap_checks() -> list[Check]:
    return [
        RuffCheck(),
        SastCheck(),
        SecretsCheck(),
        ScaCheck(AdvisoryDatabase.load(DEFAULT_ADVISORIES)),
    ]


def one_file_change(repo: Path, index: int) -> FileChange:
    path = f"ledger/mod_{index:03}.py"
    text = (repo / path).read_text()
    edited = text.replace("    fee = ", "    fee = 1 + ", 1)
    return FileChange(path=path, content=edited.encode())


def timed_gate(gate: Gate, sandbox: BubblewrapSandbox, repo: Path, change: FileChange) -> float:
    workspace = sandbox.provision(repo=repo, commit="HEAD", run_id=f"g{time.monotonic_ns()}")
    try:
        workspace.write_file(change.path, change.content or b"")
        harvested = workspace.changes()
        started = time.perf_counter()
        results = gate.run(workspace, harvested, repo=repo)
        elapsed = time.perf_counter() - started
    finally:
        workspace.destroy()
    assert all(r.passed for r in results), [r.summary for r in results if not r.passed]
    return elapsed


def whole_repository(sandbox: BubblewrapSandbox, repo: Path) -> float:
    """The same four tools over every file of the repository (no base comparison)."""
    files = tuple(
        FileChange(path=str(p.relative_to(repo)), content=p.read_bytes())
        for p in sorted(repo.rglob("*.py"))
        if ".git" not in p.parts
    )
    workspace = sandbox.provision(repo=repo, commit="HEAD", run_id="whole")
    try:
        started = time.perf_counter()
        for check in cheap_checks():
            check.run(workspace, Change(files=files))
        return time.perf_counter() - started
    finally:
        workspace.destroy()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="cf-bench-gate-") as tmp:
        root = Path(tmp)
        repo, lines = make_repository(root)
        sandbox = BubblewrapSandbox(root / "work", root / "cache")
        gate = Gate(cheap_checks(), cache=MemoryVerifyCache(), sandbox=sandbox)
        timed_gate(gate, sandbox, repo, one_file_change(repo, 1))  # warm-up: SCA's base
        cold = [
            timed_gate(gate, sandbox, repo, one_file_change(repo, 7 + 13 * i))
            for i in range(CHANGES)
        ]
        warm = [
            timed_gate(gate, sandbox, repo, one_file_change(repo, 7 + 13 * (i % 5)))
            for i in range(CHANGES)
        ]
        whole = statistics.median(whole_repository(sandbox, repo) for _ in range(3))
        p50_cold, p50_warm = statistics.median(cold), statistics.median(warm)
        print(f"repository: {MODULES + 1} Python files, {lines} lines; 2 CPUs shared")
        print(f"gate, one-file change, file baseline not cached  p50 {p50_cold:6.2f} s"
              f"  (p90 {sorted(cold)[int(len(cold) * 0.9)]:5.2f} s)")  # fmt: skip
        print(f"gate, one-file change, file baseline cached      p50 {p50_warm:6.2f} s")
        print(f"same four tools over the whole repository        {whole:9.2f} s")
        print(f"ratio whole / one-file (not cached)             {whole / p50_cold:9.1f}x")
        print(f"target: p50 under 2 s: {'met' if p50_cold < 2.0 else 'NOT met'}")


if __name__ == "__main__":
    main()
