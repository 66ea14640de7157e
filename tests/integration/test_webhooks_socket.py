"""The app on a real socket (uvicorn in a thread): concurrent deliveries, duplicates racing."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import uvicorn

from codefactory.config import Settings
from codefactory.factory import Factory, build_factory
from codefactory.triggers.settings import RepositoryBinding, TriggerSettings
from codefactory.web.app import create_app
from tests.fixtures.webhooks.signed import HERE, SECRETS, headers


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Factory]]:
    triggers = TriggerSettings(
        secrets=dict(SECRETS),  # type: ignore[arg-type]
        repositories={"sample-service": RepositoryBinding(path=tmp_path, sponsor="priya.shah")},
    )
    factory = build_factory(Settings(data_dir=tmp_path / "data", triggers=triggers))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(factory), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", factory
    server.should_exit = True
    thread.join(10)


def test_concurrent_deliveries_and_racing_duplicates_make_one_run_each(
    served: tuple[str, Factory],
) -> None:
    url, factory = served
    document = json.loads((HERE / "webhook/change-requested.json").read_bytes())

    def send(number: int) -> httpx.Response:
        data = {**document, "data": {**document["data"], "external_id": f"AUDIT-{number // 2}"}}
        body = json.dumps(data).encode()
        sent = headers("webhook", body, delivery_id=f"msg-{number // 2}")
        return httpx.post(f"{url}/webhooks/webhook", content=body, headers=sent, timeout=30)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(send, range(40)))
    assert {a.status_code for a in answers} == {202}
    by_delivery: dict[str, set[str]] = {}
    for answer in answers:
        receipt = answer.json()
        by_delivery.setdefault(receipt["delivery_id"], set()).add(receipt["run_id"])
    assert len(by_delivery) == 20 and all(len(runs) == 1 for runs in by_delivery.values())
    assert len(factory.store.search_runs(limit=100)) == 20
    assert factory.audit.verify().ok
