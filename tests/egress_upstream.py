"""A raw HTTP upstream on the host's loopback, shared by the egress tests and the escape
suite: it answers each connection's first request and records every byte the connection
carried, to show what reached it through the proxy and what did not."""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
from collections.abc import Iterator

import pytest


class Upstream:
    """A raw HTTP server on the host's loopback: answers each connection's first request and
    records every byte the connection carried, to show what reached it and what did not."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self.connections = 0
        self.received: queue.Queue[bytes] = queue.Queue()
        self.server.settimeout(0.1)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:  # TimeoutError too
                continue
            conn.settimeout(None)
            self.connections += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            data = b""
            with contextlib.suppress(OSError):
                while b"\r\n\r\n" not in data and (chunk := conn.recv(65536)):
                    data += chunk
                lines = data.split(b"\r\n\r\n")[0].split(b"\r\n")
                host = [h for h in lines if h.lower().startswith(b"host:")]
                body = b"upstream saw " + lines[0] + b" for " + b",".join(host)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                    % len(body)
                    + body
                )
                conn.shutdown(socket.SHUT_WR)
                while chunk := conn.recv(65536):
                    data += chunk
            self.received.put(data)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.server.close()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    yield server
    server.close()
