"""Benchmark: webhook intake under load, from a second process, over loopback, beside a
minimal baseline measured in the same run.

Three servers in turn, each loaded for `--seconds` with `--connections` keep-alive
connections sending signed Standard Webhooks deliveries:

1. the baseline (`intake_baseline.py`): an ASGI endpoint under uvicorn that checks the same
   signature and inserts each delivery into a SQLite database with the factory's settings,
   one durable commit per delivery;
2. `codefactory serve --workers 0` storing only (`triggers.decide_at_intake = false`):
   signature, body, replay window, then the delivery stored with its parsed trigger, many
   deliveries per commit, `202` once the commit is durable; workers decide later;
3. the same with `decide_at_intake` (the default; `--decide-seconds`, 0 skips it): each
   delivery also decided (repository, sponsor, Cedar) before its answer.

For each: deliveries/s, latency p50/p99, failures, and the deliveries acknowledged (202) but
missing from the database once the server has stopped (must be 0). The client is raw
asyncio HTTP/1.1, so it costs the 2-core machine as little as it can.

    .venv/bin/python benchmarks/bench_intake.py              # 60 s each
    .venv/bin/python benchmarks/bench_intake.py --seconds 5  # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent
KEY = b"bench-intake-key-0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
TARGET_RATE, TARGET_P99_MS = 1000.0, 250.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def signed_request(number: int, run: str) -> tuple[str, bytes]:
    """A Standard Webhooks delivery asking for a lint fix: its id and the whole request."""
    delivery_id = f"bench-{run}-{number}"
    body = json.dumps(
        {
            "type": "change.requested",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "data": {
                "repository": "sample-service",
                "kind": "fix_lint",
                "title": f"Lint sweep {number}",
                "body": "ruff findings in service/",
                "requested_by": "priya.shah",
                "labels": ["lint"],
            },
        }
    ).encode()
    stamp = str(int(time.time()))
    digest = hmac.new(KEY, f"{delivery_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    head = (
        f"POST /webhooks/webhook HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        f"webhook-id: {delivery_id}\r\nwebhook-timestamp: {stamp}\r\n"
        f"webhook-signature: v1,{base64.b64encode(digest).decode()}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return delivery_id, head.encode() + body


@dataclass
class Load:
    latencies_ms: list[float] = field(default_factory=list)
    acknowledged: set[str] = field(default_factory=set)
    failures: int = 0
    elapsed_s: float = 0.0


async def load(port: int, seconds: float, connections: int, run: str) -> Load:
    """Send deliveries on `connections` keep-alive connections until `seconds` pass."""
    result = Load()
    counter = iter(range(10**9))
    stop_at = time.monotonic() + seconds

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < stop_at:
                delivery_id, request = signed_request(next(counter), run)
                started = time.perf_counter()
                writer.write(request)
                status = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                result.latencies_ms.append((time.perf_counter() - started) * 1000)
                if status.split(b" ")[1:2] == [b"202"]:
                    result.acknowledged.add(delivery_id)
                else:
                    result.failures += 1
        except (ConnectionError, asyncio.IncompleteReadError):
            result.failures += 1
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(connection() for _ in range(connections)))
    result.elapsed_s = time.monotonic() - started
    return result


def wait_until_up(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the server did not come up in 60 s")


def measure(command: list[str], env: dict[str, str], args: argparse.Namespace, seconds: float,
            run: str) -> Load:  # fmt: skip
    port = free_port()
    process = subprocess.Popen(
        [*command, "--port", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_up(port, process)
        return asyncio.run(load(port, seconds, args.connections, run))
    finally:
        process.terminate()
        process.wait(60)


def stored_ids(database: Path) -> set[str]:
    with sqlite3.connect(database) as connection:
        return {row[0] for row in connection.execute("SELECT delivery_id FROM deliveries")}


def report(name: str, result: Load, stored: set[str], baseline: Load | None) -> list[str]:
    """Print one server's figures; the problems found (missing deliveries, failures)."""
    rate = len(result.acknowledged) / result.elapsed_s
    q = statistics.quantiles(result.latencies_ms, n=100) if len(result.latencies_ms) > 1 else []
    p50, p99 = (q[49], q[98]) if q else (0.0, 0.0)
    missing = result.acknowledged - stored
    ratio = ""
    if baseline is not None:
        base_rate = len(baseline.acknowledged) / baseline.elapsed_s
        ratio = f"   ({rate / base_rate:.2f}x the baseline)"
    print(f"{name}")
    print(f"  acknowledged (202)        {len(result.acknowledged):8d} in {result.elapsed_s:.1f} s")
    print(f"  deliveries/s              {rate:8.1f}{ratio}")
    print(f"  latency p50 / p99         {p50:8.1f} / {p99:.1f} ms")
    print(f"  failed requests           {result.failures:8d}")
    print(f"  acknowledged but missing  {len(missing):8d}")
    problems = [f"{name}: {len(missing)} acknowledged but missing"] if missing else []
    if result.failures:
        problems.append(f"{name}: {result.failures} failed requests")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--decide-seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-intake-") as scratch:
        root = Path(scratch)
        baseline_db = root / "baseline.db"
        baseline = measure(
            [str(BIN / "uvicorn"), "--app-dir", str(HERE), "intake_baseline:app",
             "--no-access-log", "--log-level", "warning"],
            {"BASELINE_DB": str(baseline_db), "BASELINE_SECRET": SECRET},
            args, args.seconds, "baseline",
        )  # fmt: skip
        print(f"webhook intake, {args.connections} connections, {os.cpu_count()} cores")
        problems += report("baseline: ASGI endpoint, signature, one commit per delivery",
                           baseline, stored_ids(baseline_db), None)  # fmt: skip
        (root / "sample-service").mkdir()
        triggers = root / "triggers.toml"
        triggers.write_text(
            f'[repositories.sample-service]\npath = "{root / "sample-service"}"\n'
            'sponsor = "priya.shah"\n'
        )
        serve = [str(BIN / "codefactory"), "--data-dir", str(root / "data"), "serve",
                 "--workers", "0", "--triggers", str(triggers)]  # fmt: skip
        env = {"CODEFACTORY_WEBHOOK_WEBHOOK_SECRET": SECRET, "CI": "true"}
        stored_only = measure(
            serve, {**env, "CODEFACTORY_TRIGGERS__DECIDE_AT_INTAKE": "false"}, args,
            args.seconds, "stored",
        )  # fmt: skip
        database = root / "data" / "factory.db"
        stored = stored_ids(database)
        problems += report("codefactory serve: stored at intake, decided by workers",
                           stored_only, stored, baseline)  # fmt: skip
        rate = len(stored_only.acknowledged) / stored_only.elapsed_s
        q = statistics.quantiles(stored_only.latencies_ms, n=100)
        verdict = "met" if rate >= TARGET_RATE and q[98] < TARGET_P99_MS else "MISSED"
        print(f"  target {TARGET_RATE:.0f}/s with p99 < {TARGET_P99_MS:.0f} ms: {verdict}")
        if args.decide_seconds > 0:
            decided = measure(serve, env, args, args.decide_seconds, "decided")
            problems += report("codefactory serve: decided at intake (the default)",
                               decided, stored_ids(database), baseline)  # fmt: skip
    if problems:
        raise SystemExit("; ".join(problems))


if __name__ == "__main__":
    main()
