"""Benchmark of lease takeover (issue 15's target: a killed worker's run resumes within 2× the
heartbeat interval), the figure beside its baseline measured in the same run.

Run with `make bench B=takeover` (or `python benchmarks/bench_takeover.py [--repeat N]
[--heartbeat S]`). Each round queues a lint run through the real intake, drives it in a worker
process that kills itself with SIGKILL as the run enters `verifying` (tests/crash_worker.py),
and sweeps in this process as a surviving worker does. Printed per round and as median and
worst: the seconds from the worker's death (its exit seen by `waitpid`) to the takeover (the
`run-taken-over` audit event's time) and to the resumed run's first new state, beside the
target (2 × heartbeat) and the baseline (one heartbeat interval, the least a lease can be
sure its owner is gone).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codefactory.dispatch.service import build_dispatch, build_execution  # noqa: E402
from codefactory.dispatch.settings import DispatchSettings  # noqa: E402
from codefactory.domain import RunState  # noqa: E402
from codefactory.factory import Factory, build_factory  # noqa: E402
from codefactory.web.app import create_app  # noqa: E402
from tests.directory_helpers import standard_directory  # noqa: E402
from tests.fixtures.webhooks.signed import headers  # noqa: E402
from tests.integration.test_webhooks import labeled, post, sample_repo, settings_for  # noqa: E402


def one_round(root: Path, heartbeat_s: float) -> tuple[float, float]:
    """Seconds from the worker's death to the takeover and to the resumed run's next state."""
    directory = standard_directory(root / "people")
    base = settings_for(root, sample_repo(root))
    settings = base.model_copy(
        update={
            "dispatch": DispatchSettings(heartbeat_s=heartbeat_s),
            "identity": base.identity.model_copy(update={"directory_file": directory}),
        }
    )
    factory: Factory = build_factory(settings)
    app = create_app(factory, build_dispatch(factory, workers=0))
    body = labeled()
    run_id = post(app, "/webhooks/github", body, headers("github", body, event="issues")).json()[
        "run_id"
    ]
    env = {
        **os.environ,
        "CODEFACTORY_DATA_DIR": str(settings.data_dir),
        "CODEFACTORY_IDENTITY__DIRECTORY_FILE": str(directory),
        "CODEFACTORY_DISPATCH__HEARTBEAT_S": str(heartbeat_s),
    }
    execution = build_execution(factory, role="survivor")
    execution.heartbeats.start()
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.crash_worker", run_id, "verifying"], cwd=ROOT, env=env
    )
    worker.wait(240)
    died = time.time()
    assert worker.returncode == -9, worker.returncode
    resumed_at = None
    while resumed_at is None and time.time() - died < 30 * heartbeat_s:
        execution.sweeper.take_over()
        for state in factory.store.require_run(run_id).history:
            if state.state is RunState.PROVISIONED and state.reason.startswith("resumed"):
                resumed_at = state.at.timestamp()
        time.sleep(0.01)
    [taken] = [e for e in factory.audit.events(run_id) if e.name == "run-taken-over"]
    for thread in list(execution.sweeper._driving.values()):
        thread.join(120)
    execution.heartbeats.stop()
    assert resumed_at is not None
    return taken.at.timestamp() - died, resumed_at - died


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--heartbeat", type=float, default=1.0, help="heartbeat interval, s")
    args = parser.parse_args()
    takeovers, resumes = [], []
    with tempfile.TemporaryDirectory() as folder:
        for number in range(args.repeat):
            taken, resumed = one_round(Path(folder) / f"round-{number}", args.heartbeat)
            takeovers.append(taken)
            resumes.append(resumed)
            print(f"round {number + 1}: taken over {taken:.2f} s, resumed {resumed:.2f} s after")
        from codefactory.sandbox.layers import sweep_stale

        for round_folder in Path(folder).glob("round-*"):
            sweep_stale(round_folder / "data" / "workspaces", min_age_s=0)
    target, worst = 2 * args.heartbeat, max(takeovers)
    print(f"heartbeat interval (baseline)     {args.heartbeat:.2f} s")
    print(f"target (2 × heartbeat)            {target:.2f} s")
    print(f"death → takeover, median / worst  {statistics.median(takeovers):.2f} / {worst:.2f} s")
    print(
        f"death → resumed, median / worst   {statistics.median(resumes):.2f} / {max(resumes):.2f} s"
    )
    verdict = "met" if worst <= target else "MISSED"
    print(f"target {verdict} ({worst / args.heartbeat:.2f} × heartbeat at worst)")


if __name__ == "__main__":
    main()
