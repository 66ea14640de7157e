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
  settings models and the ORM (`import codefactory.config, sqlalchemy.orm`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYTHON = sys.executable
CLI = str(Path(PYTHON).parent / "codefactory")
TICKET = Path(__file__).resolve().parents[1] / "src/codefactory/demo_template/tickets/SVC-101.json"
TARGETS_MS = {"--help": 200.0, "runs list": 300.0}


def median_ms(command: list[str], repeat: int, env: dict[str, str]) -> float:
    """The median wall-clock milliseconds of `repeat` runs of `command` (after one warm-up);
    RuntimeError naming the command when it exits non-zero."""
    times: list[float] = []
    for attempt in range(repeat + 1):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, env=env, timeout=120)
        elapsed = (time.perf_counter() - start) * 1000
        if done.returncode != 0:
            raise RuntimeError(f"{command} exited {done.returncode}: {done.stderr.decode()[-500:]}")
        if attempt:  # the first warms the page cache
            times.append(elapsed)
    return statistics.median(times)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="processes per figure")
    parser.add_argument("--runs", type=int, default=5, help="runs to make in a new data folder")
    parser.add_argument("--data-dir", type=Path, help="an existing data folder with runs")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEFACTORY_DATA_DIR")}
    env["CI"] = "true"  # no spinner, no terminal width: what a script sees
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as folder:
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
            ms = median_ms(command, args.repeat, env)
            goal = ""
            if target is not None:
                limit = TARGETS_MS[target]
                goal = f"  target < {limit:.0f} ms: {'met' if ms < limit else 'NOT met'}"
            print(f"  {label:<58} {ms:7.1f} ms{goal}")


if __name__ == "__main__":
    main()
