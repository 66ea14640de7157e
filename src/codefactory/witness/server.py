"""The witness's HTTP server: `POST <prefix>/add-checkpoint`, nothing else.

Standard library only (`asyncio`), so it starts in milliseconds. One client cannot make it
unavailable to others:

- a connection costs a socket and a few hundred bytes until its whole request (head and
  body) has arrived: no thread or worker waits on a silent or slow client, and the request
  must arrive within `deadline_s` of the connection (a trickle of bytes cannot hold it);
- at most `per_client` connections per client address are open at once: a client's new
  connection past it closes that client's oldest one still waiting for its request;
- at most `max_connections` are open in all: a new connection past it closes the oldest
  waiting connection of the client holding the most, so a flood sheds itself first;
- only a complete request takes one of `workers` threads, for the witness's own work;
- one request per connection; the head is at most 8 KiB, the body must declare its length
  and be at most 16 KiB.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus

from codefactory.witness.protocol import MAX_BODY_BYTES, Answer, Witness

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 8 * 1024
"""Request line and headers together."""


class _Malformed(Exception):
    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.body.decode())
        self.answer = answer


@dataclass(eq=False)
class _Connection:
    client: str
    writer: asyncio.StreamWriter
    opened: float
    waiting: bool = True  # still reading its request: may be shed
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def drop(self) -> None:
        self.writer.transport.abort()
        if self.task is not None:
            self.task.cancel()


class WitnessServer:
    """Serves one `Witness` at `prefix` (no trailing slash; empty for the root) on the
    address `(host, port)` (port 0: any free port), bound at construction."""

    def __init__(
        self,
        address: tuple[str, int],
        witness: Witness,
        *,
        prefix: str = "",
        max_connections: int = 256,
        per_client: int = 16,
        deadline_s: float = 5.0,
        workers: int = 4,
    ) -> None:
        self.witness = witness
        self.path = prefix.rstrip("/") + "/add-checkpoint"
        self.max_connections = max_connections
        self.per_client = min(per_client, max_connections)
        self.deadline_s = deadline_s
        self.workers = workers
        host, port = address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.create_server((host, port), family=family, backlog=128)
        self.server_address: tuple[str, int] = self.socket.getsockname()[:2]
        self._connections: dict[str, list[_Connection]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stopped = threading.Event()
        self._stop_requested = False

    @property
    def url(self) -> str:
        """`http://host:port<prefix>`: what the factory's `audit.witnesses[].url` names."""
        host, port = self.server_address
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}{self.path.removesuffix('/add-checkpoint')}"

    def open_connections(self) -> dict[str, int]:
        """Open connections per client address (a snapshot; for reports and tests)."""
        return {client: len(conns) for client, conns in self._connections.items() if conns}

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve until `shutdown()` (from another thread) or KeyboardInterrupt.
        `poll_interval` is accepted for `socketserver` compatibility and unused."""
        self._stopped.clear()
        try:
            asyncio.run(self._serve())
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop `serve_forever` and wait until it has returned."""
        self._stop_requested = True
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(stop.set)
            self._stopped.wait()

    def server_close(self) -> None:
        """Close the listening socket."""
        self.socket.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="witness")
        server = await asyncio.start_server(
            lambda r, w: self._accepted(r, w, pool), sock=self.socket, limit=MAX_HEAD_BYTES
        )
        try:
            if not self._stop_requested:
                await self._stop.wait()
        finally:
            server.close()
            for conn in list(self._all()):
                conn.drop()
            pool.shutdown(wait=False, cancel_futures=True)

    def _all(self) -> Iterator[_Connection]:
        for conns in self._connections.values():
            yield from conns

    async def _accepted(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pool: ThreadPoolExecutor
    ) -> None:
        peer = writer.get_extra_info("peername")
        client = client_key(str(peer[0])) if peer else ""
        conn = _Connection(client, writer, asyncio.get_running_loop().time())
        conn.task = asyncio.current_task()
        if not self._admit(conn):
            writer.transport.abort()
            return
        try:
            await self._exchange(conn, reader, pool)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._forget(conn)
            if conn.waiting:
                writer.transport.abort()
            else:
                writer.close()

    def _admit(self, conn: _Connection) -> bool:
        """Make room for `conn` by the rules in the module docstring; False: refuse it."""
        own = self._connections.setdefault(conn.client, [])
        if len(own) >= self.per_client:
            if not self._shed(own, f"over {self.per_client} connections from {conn.client}"):
                return False
        elif sum(len(c) for c in self._connections.values()) >= self.max_connections:
            busiest = max(self._connections.values(), key=len)
            if not self._shed(busiest, f"over {self.max_connections} connections"):
                if not own:
                    del self._connections[conn.client]
                return False
        own.append(conn)
        return True

    @staticmethod
    def _shed(conns: list[_Connection], why: str) -> bool:
        victim = next((c for c in conns if c.waiting), None)  # the oldest first
        if victim is None:
            log.warning("witness: %s, none idle: refusing a new one", why)
            return False
        log.warning("witness: %s: closing an idle one from %s", why, victim.client)
        conns.remove(victim)
        victim.drop()
        return True

    def _forget(self, conn: _Connection) -> None:
        conns = self._connections.get(conn.client)
        if conns is not None and conn in conns:
            conns.remove(conn)
        if not conns:
            self._connections.pop(conn.client, None)

    async def _exchange(
        self, conn: _Connection, reader: asyncio.StreamReader, pool: ThreadPoolExecutor
    ) -> None:
        try:
            async with asyncio.timeout(self.deadline_s):
                method, path, body = await self._request(reader)
        except TimeoutError:
            return  # cut: too slow, nothing to answer
        except _Malformed as err:
            conn.waiting = False
            await self._send(conn, err.answer)
            return
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            conn.waiting = False
            await self._send(conn, Answer(400, b"malformed request\n"))
            return
        conn.waiting = False
        if method != "POST":
            answer = Answer(405, b"POST add-checkpoint\n")
        elif path != self.path:
            answer = Answer(404, b"not found\n")
        else:
            loop = asyncio.get_running_loop()
            answer = await loop.run_in_executor(pool, self.witness.add_checkpoint, body)
        log.info("witness %s: %s %s %d", conn.client, method, path[:100], answer.status)
        await self._send(conn, answer)

    async def _request(self, reader: asyncio.StreamReader) -> tuple[str, str, bytes]:
        """The request's method, path and body; `_Malformed` with the answer to give."""
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _Malformed(Answer(400, b"malformed request line\n"))
        method, path = parts[0], parts[1]
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, sep, value = line.partition(":")
                if not sep:
                    raise _Malformed(Answer(400, b"malformed header\n"))
                headers[name.strip().lower()] = value.strip()
        if method != "POST":
            return method, path, b""
        if "transfer-encoding" in headers:
            raise _Malformed(Answer(411, b"a Content-Length is required\n"))
        length = headers.get("content-length", "")
        if not length.isdigit() or not length.isascii():
            raise _Malformed(Answer(411, b"a Content-Length is required\n"))
        if int(length) > MAX_BODY_BYTES:
            raise _Malformed(Answer(413, f"at most {MAX_BODY_BYTES} bytes\n".encode()))
        return method, path, await reader.readexactly(int(length))

    async def _send(self, conn: _Connection, answer: Answer) -> None:
        reason = HTTPStatus(answer.status).phrase
        head = (
            f"HTTP/1.1 {answer.status} {reason}\r\n"
            f"Server: codefactory-witness\r\n"
            f"Content-Type: {answer.content_type}\r\n"
            f"Content-Length: {len(answer.body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        conn.writer.write(head.encode("latin-1") + answer.body)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.deadline_s):
                await conn.writer.drain()


def client_key(address: str) -> str:
    """What connections are counted by: the IPv4 address, or the /64 of an IPv6 one (one
    subscriber's usual allocation); an IPv4-mapped IPv6 address counts as its IPv4."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def serve_in_thread(server: WitnessServer) -> threading.Thread:
    """Serve in a daemon thread (tests, embedding); `server.shutdown()` stops it."""
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="witness")
    thread.start()
    return thread
