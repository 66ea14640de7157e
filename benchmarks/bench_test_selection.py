"""Benchmark: test selection on a real project's suite, with mutations it seeds itself.

The project is more-itertools 10.5.0 (a pure-Python library with 660+ tests), from its sdist
on PyPI (the only network it needs: pip downloads it, hash-pinned, into the temp folder, where
the next run finds it). The base commit's test map is recorded once in
the sandbox; then each seeded mutation (an operator, a constant or a boolean flipped inside
a function, plus a few at import time) runs through the tests check twice: with selection
and with the whole suite. Printed: the share of the suite the selection ran, wall times, and
the mutations the whole suite catches that the selection misses (must be 0).

Run with `make bench B=test_selection` or `.venv/bin/python benchmarks/bench_test_selection.py`.
"""

from __future__ import annotations

import hashlib
import random
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codefactory.domain import CheckResult, FileChange  # noqa: E402
from codefactory.sandbox.bubblewrap import BubblewrapSandbox  # noqa: E402
from codefactory.sandbox.setup import install_dependencies  # noqa: E402
from codefactory.verify.cache import MemoryVerifyCache  # noqa: E402
from codefactory.verify.diff import DiffedChange  # noqa: E402
from codefactory.verify.junit import parse_junit  # noqa: E402
from codefactory.verify.regions import body_owner, function_regions  # noqa: E402
from codefactory.verify.tests import PytestCheck  # noqa: E402

PROJECT, VERSION = "more-itertools", "10.5.0"
SDIST_SHA256 = "5482bfef7849c25dc3c6dd53a6173ae4795da2a41a80faea6700d9f5846c5da6"
SOURCES = ("more_itertools/more.py", "more_itertools/recipes.py")
MUTATIONS = 30
AT_IMPORT = 3
TIMEOUT_S = 60.0
SWAPS = [
    (" < ", " <= "),
    (" <= ", " < "),
    (" > ", " >= "),
    (" == ", " != "),
    (" != ", " == "),
    (" + 1", " + 2"),
    (" - 1", " - 2"),
    (" + ", " - "),
    ("True", "False"),
    ("False", "True"),
    (" is None", " is not None"),
    (" not in ", " in "),
    ("return ", "return None and "),
]


@dataclass(frozen=True)
class Mutation:
    path: str
    line: int
    before: str
    after: str
    where: str


def fetch_sdist(cache: Path) -> Path:
    """The project's sdist from PyPI with pip (the ordinary client), hash-checked."""
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob("more*itertools-10.5.0.tar.gz"))
    if found and hashlib.sha256(found[0].read_bytes()).hexdigest() == SDIST_SHA256:
        return found[0]
    pinned = cache / "requirements.txt"
    pinned.write_text(f"{PROJECT}=={VERSION} --hash=sha256:{SDIST_SHA256}\n")
    python = shutil.which("python3") or sys.executable
    command = [python, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
    command += ["--require-hashes", "-r", str(pinned), "-d", str(cache)]
    subprocess.run(command, check=True)
    return sorted(cache.glob("more*itertools-10.5.0.tar.gz"))[0]


def make_repository(sdist: Path, root: Path) -> Path:
    with tarfile.open(sdist) as archive:
        archive.extractall(root, filter="data")
    repo = root / f"{PROJECT}-{VERSION}"
    shutil.rmtree(repo / ".github", ignore_errors=True)
    (repo / "requirements-dev.txt").write_text("pytest\n")
    git = ["git", "-C", str(repo), "-c", "user.name=b", "-c", "user.email=b@example.com"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "sdist"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    return repo


def seed_mutations(repo: Path, rng: random.Random) -> list[Mutation]:
    """One-line mutations inside function bodies (and a few at import time) that still parse."""
    inside: list[Mutation] = []
    outside: list[Mutation] = []
    for path in SOURCES:
        source = (repo / path).read_bytes()
        regions = function_regions(source)
        for number, line in enumerate(source.decode().splitlines(), start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith(("#", '"', "'", ">>>")):
                continue
            for old, new in SWAPS:
                if old in line:
                    owner = body_owner(regions, number)
                    mutation = Mutation(path, number, line, line.replace(old, new, 1), owner or "")
                    (inside if owner else outside).append(mutation)
                    break
    chosen = rng.sample(inside, MUTATIONS - AT_IMPORT) + rng.sample(outside, AT_IMPORT)
    return [m for m in chosen if _parses(repo, m)]


def _parses(repo: Path, mutation: Mutation) -> bool:
    try:
        compile(_mutated(repo, mutation), mutation.path, "exec")
    except SyntaxError:
        return False
    return True


def _mutated(repo: Path, mutation: Mutation) -> bytes:
    lines = (repo / mutation.path).read_text().splitlines(keepends=True)
    lines[mutation.line - 1] = lines[mutation.line - 1].replace(mutation.before, mutation.after)
    return "".join(lines).encode()


def tests_run(result: CheckResult) -> int:
    return parse_junit(result.evidence).tests if result.evidence.startswith("<?xml") else 0


def caught(result: CheckResult) -> bool:
    return not result.passed


def main() -> None:
    rng = random.Random(20261125)
    with tempfile.TemporaryDirectory(prefix="cf-bench-select-") as tmp:
        root = Path(tmp)
        repo = make_repository(fetch_sdist(Path(tempfile.gettempdir()) / "codefactory-bench"), root)
        sandbox = BubblewrapSandbox(root / "work", root / "uv-cache")
        cache = MemoryVerifyCache()
        selecting = PytestCheck(timeout_s=TIMEOUT_S, cache=cache)
        whole = PytestCheck(timeout_s=TIMEOUT_S, select=False)
        base = sandbox.provision(repo=repo, commit="HEAD", run_id="base")
        install_dependencies(base)
        started = time.perf_counter()
        selecting.record_base(base)
        recording_s = time.perf_counter() - started
        base.destroy()
        workspace = sandbox.provision(repo=repo, commit="HEAD", run_id="mutant")
        install_dependencies(workspace)
        mutations = seed_mutations(repo, rng)
        rows = []
        for mutation in mutations:
            original = (repo / mutation.path).read_bytes()
            workspace.write_file(mutation.path, _mutated(repo, mutation))
            change = DiffedChange(
                files=(FileChange(path=mutation.path, content=_mutated(repo, mutation)),),
                base={mutation.path: original},
            )
            t0 = time.perf_counter()
            selected = selecting.run(workspace, change)
            t1 = time.perf_counter()
            full = whole.run(workspace, change)
            t2 = time.perf_counter()
            workspace.write_file(mutation.path, original)
            rows.append((mutation, selected, full, t1 - t0, t2 - t1))
        workspace.destroy()
    report(rows, recording_s)


def report(
    rows: list[tuple[Mutation, CheckResult, CheckResult, float, float]], recording_s: float
) -> None:
    suite = max(tests_run(full) for _, _, full, _, _ in rows)
    killed_full = [r for r in rows if caught(r[2])]
    killed_selected = [r for r in rows if caught(r[1])]
    missed = [r for r in killed_full if not caught(r[1])]
    fell_back = [r for r in rows if r[1].summary.startswith("whole suite")]
    share = statistics.mean(tests_run(selected) / suite for _, selected, _, _, _ in rows)
    narrowed = [r for r in rows if r not in fell_back]
    print(f"project: {PROJECT} {VERSION}, {suite} tests; {len(rows)} seeded mutations")
    print(f"test map of the base commit recorded in {recording_s:6.2f} s (once per commit)")
    print(
        f"caught by the whole suite: {len(killed_full)}; by the selection: {len(killed_selected)}"
    )
    print(f"caught by the whole suite but missed by the selection: {len(missed)}  (must be 0)")
    print(f"selection fell back to the whole suite: {len(fell_back)} of {len(rows)}")
    print(f"share of the suite run (mean over all mutations): {share:6.1%}")
    if narrowed:
        narrow_share = statistics.mean(tests_run(r[1]) / suite for r in narrowed)
        print(f"share of the suite run (when selecting):         {narrow_share:6.1%}")
    selection_s = statistics.median(r[3] for r in rows)
    whole_s = statistics.median(r[4] for r in rows)
    print(f"wall time per change, selection   (median): {selection_s:6.2f} s")
    print(f"wall time per change, whole suite (median): {whole_s:6.2f} s")
    for mutation, selected, *_ in missed:
        where = f"{mutation.path}:{mutation.line} {mutation.after.strip()!r}"
        print(f"  MISSED {where}: {selected.summary}")
    for mutation, selected, *_ in fell_back[:5]:
        reason = re.sub(r"\s+", " ", selected.summary)[:160]
        print(f"  whole suite for {mutation.path}:{mutation.line}: {reason}")
    if missed:
        raise SystemExit("the selection missed mutations the whole suite catches")


if __name__ == "__main__":
    main()
