"""The chaos scenario of issue 15: `codefactory serve --workers 0` and three `codefactory
worker` processes on PostgreSQL and Redis; signed GitHub deliveries fired at serve while
workers are killed with SIGKILL (and restarted) and every broker connection is cut; then
every acknowledged delivery must have exactly one run, every run must rest or have ended
with a true reason, no run may show two executors, and `codefactory audit verify` must pass.

Used by tests/acceptance/test_celery_chaos.py and benchmarks/bench_chaos.py (which prints
the figures). Everything is real: the CLI's processes, PostgreSQL, Redis, Celery, bubblewrap.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
import sqlalchemy as sa

from codefactory.domain import RunState, may_transition
from codefactory.sandbox.layers import sweep_stale
from tests.conftest import SHARED_FIXTURES
from tests.fixtures.webhooks.signed import SECRETS, headers

CLI = Path(sys.executable).parent / "codefactory"
PG_ADMIN = os.environ.get(
    "CODEFACTORY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = "redis://127.0.0.1:6379"
LINT_REPOSITORY = "Codertocat/Hello-World"
CLEAN_REPOSITORY = "Codertocat/clean-service"
RESTING = {RunState.IN_REVIEW.value}
LABELED = SHARED_FIXTURES / "webhooks" / "github" / "issues" / "labeled.payload.json"


@dataclass
class Figures:
    """What a chaos run measured."""

    deliveries: int = 0
    acknowledged: int = 0
    runs: int = 0
    states: Counter[str] = field(default_factory=Counter)
    worker_kills: int = 0
    broker_cuts: int = 0
    takeovers: int = 0
    requeued_deliveries: int = 0
    fire_s: float = 0.0
    settle_s: float = 0.0
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"deliveries fired           {self.deliveries}",
            f"acknowledged (202)         {self.acknowledged}",
            f"runs                       {self.runs}",
            f"runs by state              {dict(sorted(self.states.items()))}",
            f"workers killed (SIGKILL)   {self.worker_kills}",
            f"broker connections cut     {self.broker_cuts}",
            f"lease takeovers            {self.takeovers}",
            f"firing took                {self.fire_s:.1f} s",
            f"all settled after          {self.settle_s:.1f} s",
            f"problems                   {len(self.problems)}",
            *[f"  - {problem}" for problem in self.problems[:20]],
        ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def postgres_database(name: str) -> Iterator[str]:
    """A fresh PostgreSQL database for the scenario, dropped afterwards; yields its URL."""
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def delivery(template: dict[str, Any], number: int, repository: str) -> bytes:
    """A distinct `issues.labeled` delivery (lint) for `repository`."""
    document = json.loads(json.dumps(template))
    document["label"]["name"] = "lint"
    document["repository"]["full_name"] = repository
    document["repository"]["name"] = repository.split("/")[1]
    document["issue"]["number"] = number
    document["issue"]["title"] = f"Lint findings, batch {number}"
    return json.dumps(document).encode()


class Cluster:
    """serve and the workers as processes of the real CLI, restartable."""

    def __init__(self, folder: Path, env: dict[str, str], triggers: Path, workers: int) -> None:
        self.folder = folder
        self.env = env
        self.triggers = triggers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.serve: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes] | None] = [None] * workers
        self._logs: list[Any] = []

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.folder / f"{name}.log").open("ab")
        self._logs.append(log)
        return subprocess.Popen(
            [str(CLI), *args, "--triggers", str(self.triggers)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start(self) -> None:
        self.serve = self._spawn("serve", "serve", "--port", str(self.port), "--workers", "0")
        for number in range(len(self.workers)):
            self.start_worker(number)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                return
            except httpx.TransportError:
                assert self.serve.poll() is None, (self.folder / "serve.log").read_text()
                time.sleep(0.2)
        raise AssertionError("serve did not answer within 60 s")

    def start_worker(self, number: int) -> None:
        self.workers[number] = self._spawn(f"worker-{number}", "worker", "--concurrency", "2")

    def kill_worker(self, number: int) -> None:
        process = self.workers[number]
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def stop(self) -> None:
        for process in [self.serve, *self.workers]:
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in [self.serve, *self.workers]:
            if process is not None:
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(5)
        for log in self._logs:
            log.close()


def chaos(
    cluster: Cluster,
    broker: redis.Redis,
    figures: Figures,
    stop: threading.Event,
    *,
    kills: int,
    cuts: int,
    seed: int,
) -> None:
    """Kill random workers (restarting each a second later) and cut every broker connection,
    `kills` and `cuts` times, a few seconds apart, until `stop`."""
    chooser = random.Random(seed)
    plan = ["kill"] * kills + ["cut"] * cuts
    chooser.shuffle(plan)
    for action in plan:
        if stop.wait(chooser.uniform(2.0, 5.0)):
            return
        if action == "kill":
            number = chooser.randrange(len(cluster.workers))
            cluster.kill_worker(number)
            figures.worker_kills += 1
            time.sleep(1.0)
            cluster.start_worker(number)
        else:
            broker.client_kill_filter(_type="normal", skipme=True)
            figures.broker_cuts += 1


def run_chaos(
    folder: Path,
    *,
    base_env: dict[str, str],
    lint_repo: Path,
    clean_repo: Path,
    deliveries: int = 200,
    workers: int = 3,
    kills: int = 5,
    cuts: int = 2,
    settle_timeout_s: float = 420.0,
    seed: int = 15,
    decide_at_intake: bool = False,
) -> Figures:
    """Run the scenario in `folder`; returns the figures (their `problems` empty when every
    check held). By default serve only stores deliveries (the scale-out intake) and the
    workers decide them, under the same kills; `decide_at_intake` decides them in serve."""
    figures = Figures(deliveries=deliveries)
    name = f"cf_chaos_{os.getpid()}"
    redis_db = 13 + (os.getpid() % 3)
    broker = redis.Redis.from_url(f"{REDIS_URL}/{redis_db}")
    broker.flushdb()
    triggers = folder / "triggers.toml"
    triggers.write_text(
        f'[repositories."{LINT_REPOSITORY}"]\npath = "{lint_repo}"\nsponsor = "priya.shah"\n'
        f'[repositories."{CLEAN_REPOSITORY}"]\npath = "{clean_repo}"\nsponsor = "priya.shah"\n'
    )
    template = json.loads(LABELED.read_text())
    with postgres_database(name) as database_url:
        env = {
            **base_env,
            "CODEFACTORY_DATABASE_URL": database_url,
            "CODEFACTORY_DISPATCH__EXECUTOR": "celery",
            "CODEFACTORY_DISPATCH__BROKER_URL": f"{REDIS_URL}/{redis_db}",
            "CODEFACTORY_DISPATCH__HEARTBEAT_S": "2.0",
            "CODEFACTORY_DISPATCH__REQUEUE_AFTER_S": "8",
            "CODEFACTORY_GITHUB_WEBHOOK_SECRET": SECRETS["github"],
            "CODEFACTORY_OBSERVABILITY__LOG_FORMAT": "json",
            "CODEFACTORY_TRIGGERS__DECIDE_AT_INTAKE": "true" if decide_at_intake else "false",
        }
        engine = sa.create_engine(database_url)
        cluster = Cluster(folder, env, triggers, workers)
        cluster.start()
        stop = threading.Event()
        agitator = threading.Thread(
            target=chaos,
            args=(cluster, broker, figures, stop),
            kwargs={"kills": kills, "cuts": cuts, "seed": seed},
            daemon=True,
        )
        acknowledged: dict[str, str | None] = {}
        try:
            agitator.start()
            started = time.monotonic()
            with httpx.Client(base_url=cluster.url, timeout=30) as client:
                for number in range(1, deliveries + 1):
                    repository = LINT_REPOSITORY if number % 20 == 0 else CLEAN_REPOSITORY
                    body = delivery(template, number, repository)
                    delivery_id = f"chaos-{number}"
                    sent = headers("github", body, event="issues", delivery_id=delivery_id)
                    answer = client.post("/webhooks/github", content=body, headers=sent)
                    if answer.status_code == 202:
                        acknowledged[delivery_id] = answer.json()["run_id"]
                    else:
                        figures.problems.append(f"{delivery_id}: HTTP {answer.status_code}")
                    time.sleep(0.05)
            figures.fire_s = time.monotonic() - started
            figures.acknowledged = len(acknowledged)
            settled = wait_settled(engine, settle_timeout_s)
            figures.settle_s = time.monotonic() - started
            if not settled:
                figures.problems.append(f"not settled within {settle_timeout_s:.0f} s")
        finally:
            stop.set()
            agitator.join(30)
            cluster.stop()
            engine.dispose()  # no connection left open for a later test to find
            # the killed workers' workspaces, as a worker's next start would sweep them
            sweep_stale(Path(base_env["CODEFACTORY_DATA_DIR"]) / "workspaces", min_age_s=0)
        check(engine, acknowledged, figures)
        engine.dispose()
        verify = subprocess.run(
            [str(CLI), "audit", "verify"], env=env, capture_output=True, text=True, timeout=600
        )
        if verify.returncode != 0:
            figures.problems.append(f"audit verify exited {verify.returncode}: {verify.stdout}")
    broker.flushdb()
    return figures


def wait_settled(engine: sa.Engine, timeout_s: float) -> bool:
    """Whether every delivery finished and every run rests or ended within `timeout_s`."""
    open_states = [s.value for s in RunState if not s.is_terminal and s.value not in RESTING]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            busy = connection.execute(
                sa.text(
                    "SELECT (SELECT count(*) FROM runs WHERE state = ANY(:open)) + "
                    "(SELECT count(*) FROM deliveries WHERE status IN "
                    "('received', 'queued', 'sent', 'running'))"
                ),
                {"open": open_states},
            ).scalar_one()
        if busy == 0:
            return True
        time.sleep(1.0)
    return False


def check(engine: sa.Engine, acknowledged: dict[str, str | None], figures: Figures) -> None:
    """Every acknowledged delivery has exactly one run (the one its answer named, when it
    was decided at intake); every run rests or ended with a true reason; each run's history
    is one chain of allowed moves (no second executor)."""
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT delivery_id, run_id, status FROM deliveries WHERE source = 'github'")
        ).all()
        runs = {
            row.id: row
            for row in connection.execute(sa.text("SELECT id, state, reason FROM runs")).all()
        }
        histories: dict[str, list[str]] = {}
        for row in connection.execute(
            sa.text("SELECT run_id, state FROM run_states ORDER BY id")
        ).all():
            histories.setdefault(row.run_id, []).append(row.state)
        figures.takeovers = int(
            connection.execute(
                sa.text("SELECT coalesce(sum(takeovers), 0) FROM run_leases")
            ).scalar_one()
        )
    by_delivery: dict[str, list[str]] = {}
    for row in rows:
        by_delivery.setdefault(row.delivery_id, []).append(row.run_id)
    for delivery_id, run_id in acknowledged.items():
        stored = by_delivery.get(delivery_id, [])
        if stored != [run_id] and not (run_id is None and len(stored) == 1 and stored[0]):
            figures.problems.append(f"{delivery_id}: acknowledged run {run_id}, stored {stored}")
    run_ids = [run_id for stored in by_delivery.values() for run_id in stored]
    if len(run_ids) != len(set(run_ids)):
        figures.problems.append("two deliveries share a run")
    figures.runs = len(runs)
    for run_id, run in runs.items():
        figures.states[run.state] += 1
        state = RunState(run.state)
        if not state.is_terminal and run.state not in RESTING:
            figures.problems.append(f"{run_id} still {run.state}")
        if state in (RunState.FAILED, RunState.REFUSED, RunState.NO_CHANGE) and not run.reason:
            figures.problems.append(f"{run_id} {run.state} without a reason")
        for marker in ("InvalidTransition", "LeaseLost", "internal error"):
            if marker in run.reason:
                figures.problems.append(f"{run_id} {run.state}: {run.reason[:200]}")
        history = histories.get(run_id, [])
        for before, after in zip(history, history[1:], strict=False):
            if not may_transition(RunState(before), RunState(after)):
                figures.problems.append(f"{run_id}: {before} → {after} is not a move")
