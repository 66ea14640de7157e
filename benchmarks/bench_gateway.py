"""Benchmark: the model gateway's throughput and added latency per proxied request.

The replay upstream runs under uvicorn on loopback (plain HTTP); the gateway (TLS with the
factory CA, authentication, budget, usage parsing, the `on_call` record in a worker thread
and the cassette append) forwards to it as an `openai:` upstream. The same requests go
directly to the upstream and through the gateway in the same run: sequential latency (p50,
p95), sequential and concurrent requests per second, and streamed requests. Loops are
bounded; everything stays on 127.0.0.1.

    .venv/bin/python benchmarks/bench_gateway.py                 # 300 requests per figure
    .venv/bin/python benchmarks/bench_gateway.py --requests 50   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from codefactory.engines.gateway import ModelCall, ModelGateway, ssl_context_from  # noqa: E402
from codefactory.engines.replay import build_replay_app  # noqa: E402
from codefactory.engines.session import Budget  # noqa: E402
from codefactory.engines.settings import GatewaySettings  # noqa: E402

BODY = {"model": "gpt-bench", "messages": [{"role": "user", "content": "Say OK." * 40}]}
STREAM_BODY = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
# Both clients send without Nagle's delay, as the gateway's own (anyio) upstream client does;
# otherwise a sync client's header and body writes wait out the peer's delayed ACK (~40 ms).
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
UNCAPPED = Budget(requests=None, input_tokens=None, output_tokens=None, cost_usd=None, wall_s=None)


@contextmanager
def replay_upstream(script: Path) -> Iterator[str]:
    """The replay upstream under uvicorn on a loopback listener with TCP_NODELAY (as the
    gateway's own listener has), so neither side pays a delayed-ACK wait per response."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    server = uvicorn.Server(
        uvicorn.Config(build_replay_app(script), log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the replay upstream did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)


def sequential(client: httpx.Client, url: str, body: dict[str, object], n: int) -> list[float]:
    latencies = []
    for _ in range(n):
        started = time.perf_counter()
        response = client.post(url, json=body)
        response.read()
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return latencies


async def concurrent(
    base: str, headers: dict[str, str], verify: object, n: int, width: int
) -> float:
    async with httpx.AsyncClient(
        base_url=base,
        headers=headers,
        verify=verify,  # type: ignore[arg-type]
        limits=httpx.Limits(max_connections=width),
    ) as client:
        remaining = iter(range(n))

        async def worker() -> None:
            for _ in remaining:
                response = await client.post("/v1/chat/completions", json=BODY)
                assert response.status_code == 200, response.text

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(width)))
        return n / (time.perf_counter() - started)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def measure(
    base: str, headers: dict[str, str], verify: object, n: int, width: int
) -> dict[str, float]:
    transport = httpx.HTTPTransport(verify=verify, socket_options=NODELAY)  # type: ignore[arg-type]
    with httpx.Client(base_url=base, headers=headers, transport=transport) as client:
        sequential(client, "/v1/chat/completions", BODY, 10)  # warm the connection
        plain = sequential(client, "/v1/chat/completions", BODY, n)
        streamed = sequential(client, "/v1/chat/completions", STREAM_BODY, n)
    return {
        "p50 ms": statistics.median(plain) * 1e3,
        "p95 ms": percentile(plain, 95) * 1e3,
        "sequential req/s": n / sum(plain),
        f"concurrent({width}) req/s": asyncio.run(concurrent(base, headers, verify, n, width)),
        "streamed p50 ms": statistics.median(streamed) * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        script = root / "script.json"
        script.write_text(
            json.dumps({"engine": "bench", "model": "gpt-bench", "steps": [{"text": "OK"}]})
        )
        records: list[ModelCall] = []
        with replay_upstream(script) as upstream:
            gateway = ModelGateway(
                GatewaySettings(upstream=f"openai:{upstream}/v1", upstream_key="sk-bench"),
                state_dir=root / "gateway",
                traffic_dir=root / "traffic",
                on_call=records.append,
            )
            gateway.start()
            try:
                credential = gateway.grant(
                    "bench", "agent", "sponsor", "bench", "gpt-bench", UNCAPPED
                )
                direct = measure(upstream, {}, True, args.requests, args.concurrency)
                through = measure(
                    gateway.local_url,
                    {"authorization": f"Bearer {credential}"},
                    ssl_context_from(gateway.ca_file),
                    args.requests,
                    args.concurrency,
                )
            finally:
                gateway.stop()
    print(
        f"{args.requests} requests per figure, loopback, replay upstream (plain HTTP); "
        "gateway over TLS with records and cassette"
    )
    print(f"{'':26}{'direct':>12}{'gateway':>12}{'added':>12}")
    for name, value in direct.items():
        added = through[name] - value
        print(f"{name:26}{value:12.2f}{through[name]:12.2f}{added:+12.2f}")
    ok = sum(1 for r in records if r.outcome == "ok")
    print(
        f"gateway records: {len(records)} ({ok} ok); "
        f"spend {gateway.spend('bench').requests} requests"
    )


if __name__ == "__main__":
    main()
