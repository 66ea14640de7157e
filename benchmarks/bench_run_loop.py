"""Benchmarks: sandbox start-up against a plain process, and one whole run, as ratios.

Run with `make bench B=run_loop`. Each figure is compared with a baseline measured in the
same process, since these machines are noisy.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codefactory.config import Settings  # noqa: E402
from codefactory.demo import TEMPLATE, create_sample_repository, write_demo_people  # noqa: E402
from codefactory.factory import build_factory  # noqa: E402
from codefactory.runs.tickets import accept_ticket  # noqa: E402
from codefactory.sandbox.bubblewrap import BubblewrapSandbox  # noqa: E402
from codefactory.sandbox.port import Phase  # noqa: E402


def median_ms(action: Callable[[], object], repeat: int) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def report(label: str, value_ms: float, baseline_ms: float) -> None:
    print(f"{label:<46}{value_ms:9.2f} ms  ({value_ms / baseline_ms:5.1f}x baseline)")


def sandbox_figures(root: Path) -> None:
    repo = create_sample_repository(root / "repo")
    sandbox = BubblewrapSandbox(root / "work", root / "cache")
    counter = iter(range(10**6))

    def provision_and_exec() -> None:
        workspace = sandbox.provision(repo=repo, commit="HEAD", run_id=f"b{next(counter)}")
        workspace.exec(["true"], phase=Phase.ENGINE)
        workspace.destroy()

    workspace = sandbox.provision(repo=repo, commit="HEAD", run_id="exec")
    baseline = median_ms(lambda: subprocess.run(["true"], check=True), 50)
    exec_ms = median_ms(lambda: workspace.exec(["true"], phase=Phase.ENGINE), 50)
    whole_ms = median_ms(provision_and_exec, 30)
    workspace.destroy()
    report("plain process `true` (baseline)", baseline, baseline)
    report("sandboxed `true` in a workspace", exec_ms, baseline)
    report("provision + sandboxed `true` + destroy", whole_ms, baseline)


def run_figures(root: Path) -> None:
    people = write_demo_people(root / "people")  # the sponsor is this OS account
    settings = Settings(data_dir=root / "data")
    identity = settings.identity.model_copy(update={"directory_file": people.directory_file})
    settings = settings.model_copy(update={"identity": identity})
    factory = build_factory(settings)
    repo = create_sample_repository(root / "svc")
    ticket = (TEMPLATE / "tickets" / "SVC-102.json").read_bytes()
    accept_ticket(factory, payload=ticket, repo=repo)  # warm the package cache
    pytest_ms = median_ms(
        lambda: subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(repo / "tests")],
            cwd=repo,
            capture_output=True,
            check=False,
        ),
        5,
    )
    run_ms = median_ms(lambda: accept_ticket(factory, payload=ticket, repo=repo), 5)
    report("sample's pytest suite on the host (baseline)", pytest_ms, pytest_ms)
    report("one lint run, trigger → in_review", run_ms, pytest_ms)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="cf-bench-") as tmp:
        sandbox_figures(Path(tmp))
        run_figures(Path(tmp))


if __name__ == "__main__":
    main()
