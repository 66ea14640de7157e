"""Benchmark of the CLI's start-up (issue 15's targets: `--help` under 200 ms, `runs list`
under 300 ms), each figure beside baselines measured in the same run.

Run with `make bench B=cli` (or `python benchmarks/bench_cli.py [--repeat N] [--data-dir D]`).
Every figure is the median wall-clock time of N fresh processes of the installed console
script (`codefactory`, as a user types it), output discarded:

- `codefactory --help`, against `python -c pass` (the interpreter alone) and
  `python -c "import typer"` (the CLI library alone);
- `codefactory runs list` and `runs show` on a data folder that already holds runs (made here
  with `codefactory trigger`: tickets policy refuses at intake, so no sandbox runs), against
  `python -c "import sqlalchemy"` and the floor of any command that reads the store: the
  settings models and the ORM (`import codefactory.config, sqlalchemy.orm`);
- `codefactory trigger` of the demo's lint ticket (SVC-102) on the demo's sample service,
  with the demo's people (`codefactory.demo`), each run driven to review: its wall-clock
  time, the time its tools took (the union of its child processes' lifetimes: git, bwrap
  and what runs inside, ssh-keygen; recorded by `subprocess_clock.py`) and the rest, the
  CLI's own time, whose target is under 1 s; against the same tools run by hand on a clone
  (`git clone`, `ruff check`, `ruff check --fix`, `bandit`, `detect-secrets scan`,
  `pytest`, `git commit`), without a sandbox.

Every process gets a bytecode cache of its own (`PYTHONPYCACHEPREFIX` in the temporary
folder, `PYTHONDONTWRITEBYTECODE` dropped): an installed codefactory has its bytecode, but
an editable install where PYTHONDONTWRITEBYTECODE is set (these machines) would compile
every module of the project in every process. The first process of each figure (discarded)
fills it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess  # noqa: TID251 - a benchmark starts the CLI and tools, as a user does
import sys
import tempfile
import time
from pathlib import Path

PYTHON = sys.executable
BIN = Path(PYTHON).parent
CLI = str(BIN / "codefactory")
TICKETS = Path(__file__).resolve().parents[1] / "src/codefactory/demo_template/tickets"
TICKET = TICKETS / "SVC-101.json"
LINT_TICKET = TICKETS / "SVC-102.json"
AUTHOR = ["-c", "user.name=Sample Developer", "-c", "user.email=dev@bank.example"]
CLOCK = str(Path(__file__).resolve().with_name("subprocess_clock.py"))
TARGETS_MS = {"--help": 200.0, "runs list": 300.0, "trigger": 1000.0}


def median_ms(command: list[str], repeat: int, env: dict[str, str]) -> tuple[float, float]:
    """The median wall-clock and processor (user + system) milliseconds of `repeat` runs of
    `command` (after one warm-up); RuntimeError naming the command when it exits non-zero.
    Processor time hardly grows when other processes share the machine; wall time does."""
    times: list[float] = []
    cpus: list[float] = []
    for attempt in range(repeat + 1):
        before = children_cpu_s()
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, env=env, timeout=120)
        elapsed = (time.perf_counter() - start) * 1000
        if done.returncode != 0:
            raise RuntimeError(f"{command} exited {done.returncode}: {done.stderr.decode()[-500:]}")
        if attempt:  # the first warms the page cache
            times.append(elapsed)
            cpus.append((children_cpu_s() - before) * 1000)
    return statistics.median(times), statistics.median(cpus)


def children_cpu_s() -> float:
    """Processor seconds (user + system) of every child process waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def fill(data_dir: Path, runs: int, env: dict[str, str]) -> str:
    """`runs` refused runs in `data_dir` through `codefactory trigger`; the last run's id."""
    document = json.loads(TICKET.read_text())
    document["fields"]["labels"] = ["ci"]  # a CI change: refused at intake, before any sandbox
    ticket = data_dir.parent / "ci-ticket.json"
    ticket.write_text(json.dumps(document))
    run_id = ""
    for _ in range(runs):
        done = subprocess.run(
            [CLI, "--data-dir", str(data_dir), "trigger", "--repo", str(data_dir.parent)]
            + ["--ticket", str(ticket), "--json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        run_id = str(json.loads(done.stdout)["id"])
    return run_id


def newest_run(data_dir: Path, env: dict[str, str]) -> str:
    """The id of the newest run in `data_dir`; SystemExit when it holds none."""
    done = subprocess.run(
        [CLI, "--data-dir", str(data_dir), "runs", "list", "--json", "--limit", "1"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    found = json.loads(done.stdout)
    if not found:
        raise SystemExit(f"{data_dir} holds no run: leave out --data-dir to make one")
    return str(found[0]["id"])


def union_s(intervals: list[tuple[float, float]]) -> float:
    """The seconds covered by at least one of `intervals` ((start, end) pairs, seconds)."""
    covered, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            covered += end - max(start, reach)
            reach = end
    return covered


def clocked_trigger(
    command: list[str], env: dict[str, str], record: Path
) -> tuple[float, float, float]:
    """Seconds of wall-clock time of one `codefactory` process running `command` (its
    arguments), seconds of it during which at least one child process ran, and the
    processor seconds of the process itself; RuntimeError when it fails or does not stop in
    review."""
    start = time.perf_counter()
    done = subprocess.run(
        [PYTHON, CLOCK, str(record), CLI, *command], capture_output=True, text=True, env=env
    )
    wall = time.perf_counter() - start
    if done.returncode != 0 or json.loads(done.stdout)["state"] != "in_review":
        raise RuntimeError(f"trigger exited {done.returncode}: {done.stderr[-800:]}")
    recorded = json.loads(record.read_text())
    children = recorded["children"]
    return wall, union_s([(c["start"], c["end"]) for c in children]), float(recorded["cpu"])


def by_hand(repo: Path, work: Path, env: dict[str, str]) -> float:
    """Seconds to do the lint ticket's work by hand: clone `repo` into `work`, find and fix
    the lint, check the changed file (ruff, bandit, detect-secrets), run the tests, commit.
    The tools are this environment's; pytest without its plugins (a service's own virtual
    environment holds none of the factory's)."""
    changed = "service/hostnames.py"
    steps = [
        ["git", "clone", "-q", str(repo), str(work)],
        [str(BIN / "ruff"), "check", "--no-cache", "--exit-zero", "--output-format", "json", "."],
        [str(BIN / "ruff"), "check", "--no-cache", "--exit-zero", "--fix", "."],
        [str(BIN / "ruff"), "check", "--no-cache", "--output-format", "json", "--", changed],
        [str(BIN / "bandit"), "-q", "--", changed],
        [str(BIN / "detect-secrets"), "scan", changed],
        [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        ["git", *AUTHOR, "commit", "-qam", "Remove unused import"],
    ]
    hand_env = {**env, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    start = time.perf_counter()
    for step in steps:
        subprocess.run(
            step,
            cwd=work if step[1] != "clone" else None,
            env=hand_env,
            check=True,
            capture_output=True,
            timeout=120,
        )
    return time.perf_counter() - start


def report_trigger(folder: Path, repeat: int, env: dict[str, str]) -> None:
    """Print the lint ticket's trigger figures (medians of `repeat` runs, after one warm-up
    run that builds the sandbox's images) beside the same work by hand."""
    from codefactory.demo import create_sample_repository, write_demo_people

    repo = create_sample_repository(folder / "sample-service")
    people = write_demo_people(folder / "data-people")
    env = {
        **env,
        "CODEFACTORY_IDENTITY__DIRECTORY_FILE": str(people.directory_file),
        "CODEFACTORY_VERIFY__ADVISORIES_MAX_AGE_DAYS": "none",  # as the demo: shipped data
    }
    command = ["--data-dir", str(folder / "data"), "trigger", "--repo", str(repo)]
    command += ["--ticket", str(LINT_TICKET), "--json"]
    walls, tools, cpus, hands = [], [], [], []
    for attempt in range(repeat + 1):
        wall, tool, cpu = clocked_trigger(command, env, folder / "children.json")
        hand = by_hand(repo, folder / f"by-hand-{attempt}", env)
        if attempt:  # the first builds the images and fills the bytecode cache
            walls.append(wall)
            tools.append(tool)
            cpus.append(cpu)
            hands.append(hand)
    own_ms = statistics.median(w - t for w, t in zip(walls, tools, strict=True)) * 1000
    limit = TARGETS_MS["trigger"]
    goal = f"  target < {limit:.0f} ms: {'met' if own_ms < limit else 'NOT met'}"
    print(f"lint ticket (SVC-102) to review: median of {repeat} runs each")
    print(row("codefactory trigger: wall-clock", statistics.median(walls) * 1000))
    print(row("  of which its tools (child processes)", statistics.median(tools) * 1000))
    cpu_ms = statistics.median(cpus) * 1000
    print(row("  the rest: the CLI's own time", own_ms) + f"  (cpu {cpu_ms:6.1f} ms)" + goal)
    print(row("the same tools by hand (clone, ruff, bandit, ...)", statistics.median(hands) * 1000))


def row(label: str, ms: float) -> str:
    """One printed figure: its label, then milliseconds."""
    return f"  {label:<58} {ms:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="processes per figure")
    parser.add_argument("--runs", type=int, default=5, help="runs to make in a new data folder")
    parser.add_argument("--data-dir", type=Path, help="an existing data folder with runs")
    parser.add_argument(
        "--trigger-repeat", type=int, default=5, help="lint-ticket triggers measured (0: none)"
    )
    args = parser.parse_args()
    user_env = os.environ  # noqa: TID251 - a benchmark passes the user's environment on
    env = {k: v for k, v in user_env.items() if not k.startswith("CODEFACTORY_DATA_DIR")}
    env["CI"] = "true"  # no spinner, no terminal width: what a script sees
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as folder:
        env["PYTHONPYCACHEPREFIX"] = str(Path(folder) / "pycache")
        data_dir = args.data_dir or Path(folder) / "data"
        run_id = newest_run(data_dir, env) if args.data_dir else fill(data_dir, args.runs, env)
        at = ["--data-dir", str(data_dir)]
        rows = [
            ("python -c pass", [PYTHON, "-c", "pass"], None),
            ("python -c 'import typer'", [PYTHON, "-c", "import typer"], None),
            ("codefactory --help", [CLI, "--help"], "--help"),
            ("python -c 'import sqlalchemy'", [PYTHON, "-c", "import sqlalchemy"], None),
            (
                "python -c 'import codefactory.config, sqlalchemy.orm'",
                [PYTHON, "-c", "import codefactory.config, sqlalchemy.orm"],
                None,
            ),
            ("codefactory runs list", [CLI, *at, "runs", "list"], "runs list"),
            ("codefactory runs show RUN", [CLI, *at, "runs", "show", run_id], None),
        ]
        print(f"CLI start-up: median of {args.repeat} fresh processes each, {data_dir}")
        for label, command, target in rows:
            ms, cpu_ms = median_ms(command, args.repeat, env)
            goal = f"  (cpu {cpu_ms:6.1f} ms)"
            if target is not None:
                limit = TARGETS_MS[target]
                goal += f"  target < {limit:.0f} ms: {'met' if ms < limit else 'NOT met'}"
            print(row(label, ms) + goal)
        if args.trigger_repeat:
            report_trigger(Path(folder) / "trigger", args.trigger_repeat, env)


if __name__ == "__main__":
    main()
