"""Benchmark: real public projects (PyPI sdists, npm tarballs) set up, verified and judged.

For each project of `real_repos.PROJECTS`, through the `codefactory` command line with a data
folder of its own:

- setup, cold: the first `sandbox run` builds the workspace image (tree + environment; the
  package download cache is kept between benchmark runs, so after the first run this measures
  installing, not downloading); warm: the same call again, the image reused. Baseline: the
  same call with no setup and no images (the CLI's start and a bare sandbox).
- the environment: each version the project's lock or pinned requirements fix, read in the
  sandbox, against the pin.
- verify: `codefactory verify` of a one-line harmless change (must pass) and of a seeded
  mutation the project's own tests catch (must block, by the tests check), against real OSV
  data (PyPI and npm) synced once with `codefactory advisories sync --from` a loopback
  server. Baseline: the project's test command alone, once, in the warm sandbox.
- a planted vulnerable pin (`pyjwt==1.5.0` added where the project declares its test
  dependencies, not relocked): must block, by SCA.

Run with `make bench B=real_repos`, or `.venv/bin/python benchmarks/bench_real_repos.py
[NAME ...]` for some projects only.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.factory_cli import (
    TRUE,
    FactoryCli,
    Verdict,
    data_dir,
    installed_versions,
    synced_advisories,
)  # noqa: E402
from benchmarks.real_repos import CACHE, PROJECTS, RealProject, git, materialise  # noqa: E402

PYTHON_TESTS = ("/env/bin/python", "-m", "pytest", "-q", "-p", "no:cacheprovider")
NPM_TESTS = ("/usr/bin/npm", "test")


@dataclass
class Row:
    """One project's measurements; a time is None when its step could not run."""

    project: RealProject
    bare_s: float | None = None
    cold_s: float | None = None
    warm_s: float | None = None
    tests_s: float | None = None
    env: str = "-"
    harmless: Verdict | None = None
    mutation: Verdict | None = None
    planted: Verdict | None = None
    error: str = ""

    @property
    def harmless_ok(self) -> bool:
        return self.harmless is not None and self.harmless.passed

    @property
    def mutation_ok(self) -> bool:
        return self.mutation is not None and self.mutation.blocked_by_tests

    @property
    def planted_ok(self) -> bool:
        return self.planted is None or _blocked_by_sca(self.planted) or _unlocked(self.planted)


def _unlocked(verdict: Verdict) -> bool:
    """The gate refused to set the change up because it left the lock file out of date with
    its manifest (a uv project's pin added without `uv lock`): nothing of it can run."""
    return not verdict.passed and "out of date" in (verdict.error or "")


def _blocked_by_sca(verdict: Verdict) -> bool:
    return not verdict.passed and any(b.startswith("sca:") for b in verdict.blocking)


def measure(item: RealProject, root: Path, advisories: Path) -> Row:
    """Every figure of one project; a step that fails is recorded and the rest go on."""
    row = Row(project=item)
    repo = CACHE / "bench" / item.slug  # a stable path keeps its package cache between runs
    shutil.rmtree(repo, ignore_errors=True)
    materialise(item, repo)
    cli = FactoryCli(
        data_dir(root / item.slug, CACHE / "packages"),
        env={"CODEFACTORY_ADVISORIES_DIR": str(advisories)},
    )
    bare = cli.sandbox(repo, TRUE, setup=False, images=False)
    row.bare_s = bare.seconds if bare.returncode == 0 else None
    cold = cli.sandbox(repo, TRUE)
    if cold.returncode != 0:
        row.error = f"setup: exit {cold.returncode}: {_setup_error(cold.stderr)}"
        return row
    row.cold_s = cold.seconds
    warm = cli.sandbox(repo, TRUE)
    row.warm_s = warm.seconds if warm.returncode == 0 else None
    tests = cli.sandbox(repo, *(NPM_TESTS if item.ecosystem == "npm" else PYTHON_TESTS))
    row.tests_s = tests.seconds if tests.json()["exit_code"] == 0 else None
    row.env = environment(cli, repo, item)
    edits = [(item.harmless, "harmless"), (item.mutation, "mutation"), (item.planted, "planted")]
    for edit, attribute in edits:
        if edit is not None:
            edit.apply(repo)
            setattr(row, attribute, cli.verify(repo))
            git(repo, "checkout", "--", edit.path)
    return row


def environment(cli: FactoryCli, repo: Path, item: RealProject) -> str:
    """`n/m pins` (the versions installed that equal the pins), or `-` with no pins."""
    if not item.pins:
        return "-"
    try:
        versions = installed_versions(cli, repo, item.ecosystem, [n for n, _ in item.pins])
    except ValueError as err:
        return f"probe failed: {_last_line(str(err))}"
    wrong = [f"{n} {versions.get(n)}≠{v}" for n, v in item.pins if versions.get(n) != v]
    return f"{len(item.pins) - len(wrong)}/{len(item.pins)} pins" + (
        f" ({', '.join(wrong)})" if wrong else ""
    )


def _setup_error(stderr: str) -> str:
    """The CLI's error line and the setup log's lines that say what failed."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    said = [line for line in lines[1:] if re.search(r"fail|error|not found", line, re.I)]
    return " | ".join([line[:300] for line in lines[:1] + said[:3]])


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _verdict(verdict: Verdict | None, *, expect_pass: bool) -> str:
    if verdict is None:
        return "not run"
    if expect_pass:
        return "pass" if verdict.passed else "BLOCKED"
    if verdict.blocked_by_tests:
        return "blocked (tests)"
    return "blocked (not by tests)" if not verdict.passed else "PASSED"


def _planted(verdict: Verdict | None) -> str:
    if verdict is None:
        return "-"
    if _blocked_by_sca(verdict):
        return "blocked (sca)"
    if _unlocked(verdict):
        return "refused (lock out of date)"
    return "PASSED" if verdict.passed else "blocked (other)"


def report(rows: list[Row], elapsed: float) -> None:
    """The table, the totals, and every unexpected verdict with its reason."""
    header = (
        f"{'project':<20} {'eco':<4} {'bare s':>6} {'cold s':>6} {'warm s':>6} "
        f"{'tests s':>7} {'verify s':>8} {'harmless':<8} {'mutation':<22} {'vuln pin':<14} "
        "environment"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        harmless_s = row.harmless.seconds if row.harmless else None
        print(
            f"{row.project.slug:<20} {row.project.ecosystem[:4]:<4} {_s(row.bare_s):>6} "
            f"{_s(row.cold_s):>6} {_s(row.warm_s):>6} {_s(row.tests_s):>7} "
            f"{_s(harmless_s):>8} {_verdict(row.harmless, expect_pass=True):<8} "
            f"{_verdict(row.mutation, expect_pass=False):<22} {_planted(row.planted):<14} "
            f"{row.env}"
        )

    def total(values: list[float | None]) -> str:
        return _s(sum(v for v in values if v is not None))

    print("-" * len(header))
    print(
        f"totals: bare {total([r.bare_s for r in rows])} s, cold setup "
        f"{total([r.cold_s for r in rows])} s, warm setup {total([r.warm_s for r in rows])} s, "
        f"tests alone {total([r.tests_s for r in rows])} s, verify (harmless) "
        f"{total([r.harmless.seconds if r.harmless else None for r in rows])} s; "
        f"harmless passed {sum(r.harmless_ok for r in rows)}/{len(rows)}, mutations blocked "
        f"by their tests {sum(r.mutation_ok for r in rows)}/{len(rows)}, planted vulnerable "
        f"pins blocked by SCA {sum(r.planted is not None and r.planted_ok for r in rows)}/"
        f"{sum(r.planted is not None for r in rows)}; "
        f"wall {elapsed:.0f} s"
    )
    for row in rows:
        if row.project.known_gap:
            print(f"  {row.project.slug} known gap: {row.project.known_gap}")
        for what, problem in _problems(row):
            print(f"  {row.project.slug} {what}: {problem}")


def _why(verdict: Verdict) -> str:
    return _setup_error(verdict.error) if verdict.error else verdict.reason()


def _problems(row: Row) -> list[tuple[str, str]]:
    found = [("error", row.error)] if row.error else []
    if row.harmless is not None and not row.harmless.passed:
        found.append(("harmless change", _why(row.harmless)))
    if row.mutation is not None and not row.mutation.blocked_by_tests:
        found.append(("mutation", _why(row.mutation)))
    if row.planted is not None and not row.planted_ok:
        found.append(("planted pyjwt==1.5.0", _why(row.planted)))
    return found


def main(names: list[str]) -> int:
    chosen = [p for p in PROJECTS if not names or p.name in names]
    if names and len(chosen) != len(set(names)):
        known = ", ".join(p.name for p in PROJECTS)
        print(f"unknown project among {names}; known: {known}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cf-bench-real-") as tmp:
        advisories = synced_advisories(Path(tmp) / "advisories")
        rows = []
        for item in chosen:
            print(f"== {item.slug} ({item.layout})", file=sys.stderr, flush=True)
            rows.append(measure(item, Path(tmp), advisories))
    print("projects: real releases from PyPI and npm (benchmarks/real_repos.py); 2 CPUs shared")
    print("bare = sandbox with no setup (the baseline for setup); tests = the project's tests")
    print("alone in the warm sandbox (the baseline for verify)")
    report(rows, time.perf_counter() - started)
    complete = all(
        r.harmless_ok and r.mutation_ok and r.planted_ok for r in rows if not r.project.known_gap
    )
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
