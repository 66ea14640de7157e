"""The witness's HTTP server: `POST <prefix>/add-checkpoint`, nothing else.

Standard library only (`http.server`), so it starts in milliseconds. A hostile caller cannot
exhaust it: at most `max_connections` connections are served at once (more are closed at
once), each connection has a total deadline (`deadline_s`: headers and body together, so a
trickle of bytes cannot hold it) and one request; a body must declare its length and be at
most 16 KiB.
"""

from __future__ import annotations

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from codefactory.witness.protocol import MAX_BODY_BYTES, Answer, Witness

log = logging.getLogger(__name__)


class WitnessServer(ThreadingHTTPServer):
    """Serves one `Witness` at `prefix` (no trailing slash; empty for the root)."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(
        self,
        address: tuple[str, int],
        witness: Witness,
        *,
        prefix: str = "",
        max_connections: int = 64,
        deadline_s: float = 10.0,
    ) -> None:
        self.witness = witness
        self.path = prefix.rstrip("/") + "/add-checkpoint"
        self.deadline_s = deadline_s
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        """`http://host:port<prefix>`: what the factory's `audit.witnesses[].url` names."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}{self.path.removesuffix('/add-checkpoint')}"

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log.warning("witness: too many connections; closing one from %s", client_address)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        timer = threading.Timer(self.deadline_s, _cut, (request,))
        timer.daemon = True
        timer.start()
        try:
            super().process_request_thread(request, client_address)
        finally:
            timer.cancel()
            self._slots.release()


def _cut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Handler(BaseHTTPRequestHandler):
    server: WitnessServer
    protocol_version = "HTTP/1.1"
    timeout = 5.0  # per socket read; the server's deadline bounds the whole connection
    server_version = "codefactory-witness"
    sys_version = ""

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.close_connection = True
        if self.path != self.server.path:
            self._answer(Answer(404, b"not found\n"))
            return
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._answer(Answer(411, b"a Content-Length is required\n"))
            return
        if int(length) > MAX_BODY_BYTES:
            self._answer(Answer(413, f"at most {MAX_BODY_BYTES} bytes\n".encode()))
            return
        body = self.rfile.read(int(length))
        if len(body) != int(length):
            return
        self._answer(self.server.witness.add_checkpoint(body))

    def do_GET(self) -> None:  # noqa: N802
        self.close_connection = True
        self._answer(Answer(405, b"POST add-checkpoint\n"))

    def _answer(self, answer: Answer) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        log.info("witness %s: " + format, self.client_address[0], *args)


def serve_in_thread(server: WitnessServer) -> threading.Thread:
    """Serve in a daemon thread (tests, embedding); `server.shutdown()` stops it."""
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), daemon=True, name="witness"
    )
    thread.start()
    return thread
