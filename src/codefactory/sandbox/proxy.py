"""The host-side egress proxy: HTTP CONNECT and plain HTTP, deciding by host name.

It runs outside every sandbox, on an event loop in a thread of the factory's process. Each
command that may reach the network gets its own Unix socket (a channel), bound into its
sandbox; the channel knows the run and the phase, which the sandboxed command cannot forge.
Names are resolved here, never inside the sandbox (which has no DNS), and the proxy connects
to the address it checked, so a rebinding answer cannot steer it elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from codefactory.sandbox.egress import EgressAttempt, EgressPolicy, forbidden_address

HEAD_LIMIT = 64 * 1024
CONNECT_TIMEOUT_S = 10.0


@dataclass
class EgressChannel:
    """One command's way out: its socket, its policy and what it tried."""

    path: Path
    run_id: str
    phase: str
    policy: EgressPolicy
    attempts: list[EgressAttempt] = field(default_factory=list)
    server: asyncio.AbstractServer | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class EgressProxy:
    """Serves channels; its event-loop thread runs only while a channel is open."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._folder: Path | None = None
        self._lock = threading.Lock()
        self._open = 0
        self._count = 0

    def open(self, *, run_id: str, phase: str, policy: EgressPolicy) -> EgressChannel:
        """A new listening socket for one command."""
        with self._lock:
            if self._loop is None:
                self._folder = Path(tempfile.mkdtemp(prefix="cf-egress-"))
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._loop.run_forever, name="egress-proxy", daemon=True
                )
                self._thread.start()
            self._open += 1
            self._count += 1
            loop, folder, number = self._loop, self._folder, self._count
        assert folder is not None
        channel = EgressChannel(
            path=folder / f"{number}.sock", run_id=run_id, phase=phase, policy=policy
        )
        try:
            asyncio.run_coroutine_threadsafe(self._listen(channel), loop).result()
        except BaseException:
            self.close(channel)
            raise
        return channel

    def close(self, channel: EgressChannel) -> list[EgressAttempt]:
        """Stop the channel, cut its connections; returns its attempts in order."""
        with self._lock:
            loop = self._loop
            assert loop is not None
            asyncio.run_coroutine_threadsafe(_stop(channel), loop).result()
            with contextlib.suppress(FileNotFoundError):
                channel.path.unlink()
            self._open -= 1
            if self._open == 0:
                self._stop_loop(loop)
        return list(channel.attempts)

    def _stop_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join()
        loop.close()
        self._loop = self._thread = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def shutdown(self) -> None:
        """Nothing to do once every channel is closed; kept for symmetry with `open`."""

    async def _listen(self, channel: EgressChannel) -> None:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            channel.tasks.add(task)
            try:
                await _handle(channel, reader, writer)
            except asyncio.CancelledError:
                pass  # the command ended: its connections are cut, not failed
            finally:
                channel.tasks.discard(task)
                writer.close()

        channel.server = await asyncio.start_unix_server(accept, path=str(channel.path))
        channel.path.chmod(0o600)


async def _stop(channel: EgressChannel) -> None:
    if channel.server is not None:
        channel.server.close()
        await channel.server.wait_closed()
    for task in list(channel.tasks):
        task.cancel()
    await asyncio.gather(*channel.tasks, return_exceptions=True)
    for _ in range(3):  # let the transports' scheduled closes run
        await asyncio.sleep(0)


async def _handle(
    channel: EgressChannel, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
        return
    request = _parse(head)
    if request is None:
        await _refuse(writer, 400, "malformed proxy request")
        return
    method, host, port, forward = request
    allowed, reason, address = await _decide(channel.policy, host, port)
    attempt = EgressAttempt(
        run_id=channel.run_id,
        phase=channel.phase,
        host=host,
        port=port,
        allowed=allowed,
        reason=reason,
        method=method,
    )
    channel.attempts.append(attempt)
    if not allowed or address is None:
        await _refuse(writer, 403, f"egress to {host}:{port} denied: {reason}")
        return
    try:
        up_reader, up_writer = await asyncio.wait_for(
            asyncio.open_connection(*address), CONNECT_TIMEOUT_S
        )
    except (OSError, TimeoutError) as err:
        await _refuse(writer, 502, f"could not reach {host}:{port}: {err}")
        return
    if forward is None:
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
    else:
        up_writer.write(forward)
    await _splice(reader, writer, up_reader, up_writer)


async def _decide(
    policy: EgressPolicy, host: str, port: int
) -> tuple[bool, str, tuple[str, int] | None]:
    allowed, reason = policy.decide(host, port)
    if not allowed:
        return False, reason, None
    mapped = policy.address(host, port)
    if mapped is not None:
        return True, f"{reason}; mapped to {mapped[0]}:{mapped[1]}", mapped
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=1)
    except OSError as err:
        return False, f"{reason}, but the name does not resolve: {err}", None
    address = str(infos[0][4][0])
    why_not = forbidden_address(address)
    if why_not:
        return False, why_not, None
    return True, reason, (address, port)


def _parse(head: bytes) -> tuple[str, str, int, bytes | None] | None:
    """(method, host, port, request to forward or None for CONNECT)."""
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
    except ValueError:
        return None
    if method == "CONNECT":
        host, _, port = target.rpartition(":")
        host = host.strip("[]")
        return (method, host, int(port), None) if host and port.isdigit() else None
    url = urlsplit(target)
    if url.scheme != "http" or not url.hostname:
        return None
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    kept = [h for h in lines[1:] if h and not h.lower().startswith(("proxy-", "connection:"))]
    forward = "\r\n".join([f"{method} {path} {version}", *kept, "Connection: close", "", ""])
    return method, url.hostname, url.port or 80, forward.encode("latin-1")


async def _refuse(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    phrase = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}[status]
    body = (message + "\n").encode()
    writer.write(
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(OSError):
        await writer.drain()


async def _splice(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        with contextlib.suppress(OSError):
            sink.write_eof()

    try:
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
    finally:
        up_writer.close()
