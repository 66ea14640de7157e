"""The replay upstream on a real socket: uvicorn in a thread, for tests and benchmarks."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from codefactory.engines.replay.app import build_replay_app


@contextmanager
def serving_replay(
    transcript_path: Path, *, strict: bool = False, host: str = "127.0.0.1", port: int = 0
) -> Iterator[str]:
    """Serve `transcript_path` over HTTP/1.1 on `host` (port 0: a free one) until the block
    ends; yields the base URL `http://HOST:PORT` (no path: OpenAI clients add `/v1`).

    Raises TranscriptError for a bad transcript, RuntimeError when uvicorn does not start
    within 10 s."""
    app = build_replay_app(transcript_path, strict=strict)
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        bound = int(listener.getsockname()[1])
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [listener]}, daemon=True, name="replay-upstream"
        )
        thread.start()
        try:
            _wait_started(server, thread)
            yield f"http://{host}:{bound}"
        finally:
            server.should_exit = True
            thread.join(10)


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the replay upstream did not start")
        time.sleep(0.01)
