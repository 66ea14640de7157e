"""Benchmark: webhook intake under load, from a second process, over loopback.

Starts `codefactory serve --workers 0` (uvicorn, as in production, with the workers disabled
so no sandbox runs: each delivery is signature-checked, stored, and decided by Cedar at
intake, then waits in the durable queue), fires signed Standard Webhooks deliveries at it
from this process for `--seconds` with `--concurrency` connections, then stops the server and
counts, in the SQLite store, the deliveries that were acknowledged (202) but are missing.

    .venv/bin/python benchmarks/bench_intake.py              # 60 s
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
from pathlib import Path

import httpx

CLI = Path(sys.executable).parent / "codefactory"
KEY = b"bench-intake-key-0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(KEY).decode()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def signed(number: int) -> tuple[bytes, dict[str, str]]:
    """A Standard Webhooks delivery asking for a lint fix on the mapped repository."""
    delivery_id = f"bench-{number}"
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
    headers = {
        "webhook-id": delivery_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
        "content-type": "application/json",
    }
    return body, headers


async def load(url: str, seconds: float, concurrency: int) -> tuple[list[float], set[str], int]:
    """Send deliveries until `seconds` pass; latencies (ms), acknowledged ids, failures."""
    latencies: list[float] = []
    acknowledged: set[str] = set()
    failures = 0
    counter = iter(range(10**9))
    stop_at = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def connection() -> None:
            nonlocal failures
            while time.monotonic() < stop_at:
                body, headers = signed(next(counter))
                started = time.perf_counter()
                try:
                    answer = await client.post("/webhooks/webhook", content=body, headers=headers)
                except httpx.HTTPError:
                    failures += 1
                    continue
                latencies.append((time.perf_counter() - started) * 1000)
                if answer.status_code == 202:
                    acknowledged.add(headers["webhook-id"])
                else:
                    failures += 1

        await asyncio.gather(*(connection() for _ in range(concurrency)))
    return latencies, acknowledged, failures


def wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"serve exited with {process.returncode}")
        try:
            httpx.get(f"{url}/openapi.json", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("serve did not come up in 30 s")


def stored(database: Path) -> tuple[set[str], dict[str, int]]:
    with sqlite3.connect(database) as connection:
        ids = {row[0] for row in connection.execute("SELECT delivery_id FROM deliveries")}
        states = dict(connection.execute("SELECT state, count(*) FROM runs GROUP BY state"))
    return ids, states


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-intake-") as scratch:
        root = Path(scratch)
        (root / "sample-service").mkdir()
        triggers = root / "triggers.toml"
        triggers.write_text(
            f'[repositories.sample-service]\npath = "{root / "sample-service"}"\n'
            'sponsor = "priya.shah"\n'
        )
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "CODEFACTORY_WEBHOOK_WEBHOOK_SECRET": SECRET, "CI": "true"}
        command = [str(CLI), "--data-dir", str(root / "data"), "serve", "--port", str(port)]
        process = subprocess.Popen(
            [*command, "--workers", "0", "--triggers", str(triggers)],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        try:
            wait_until_up(url, process)
            started = time.monotonic()
            latencies, acknowledged, failures = asyncio.run(
                load(url, args.seconds, args.concurrency)
            )
            elapsed = time.monotonic() - started
        finally:
            process.terminate()
            process.wait(30)
        ids, states = stored(root / "data" / "factory.db")
    missing = acknowledged - ids
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    print(f"webhook intake, {args.concurrency} connections, {elapsed:.1f} s, workers disabled")
    print(f"  acknowledged (202)        {len(acknowledged):8d}")
    print(f"  deliveries/s              {len(acknowledged) / elapsed:8.1f}")
    print(f"  latency p50               {quantiles[49]:8.1f} ms")
    print(f"  latency p99               {quantiles[98]:8.1f} ms")
    print(f"  failed requests           {failures:8d}")
    print(f"  runs by state             {states}")
    print(f"  acknowledged but missing  {len(missing):8d}")
    if missing or failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
