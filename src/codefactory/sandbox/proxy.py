"""The host-side egress proxy: HTTP CONNECT and plain HTTP, deciding by host name and address.

It runs outside every sandbox, on an event loop in a thread of the factory's process. Each
command that may reach the network gets its own Unix socket (a channel), bound into its
sandbox; the channel knows the run and the phase, which the sandboxed command cannot forge.
Names are resolved here, never inside the sandbox (which has no DNS); every address a name
resolves to is screened (`forbidden_address`) and the proxy connects to the exact address it
checked, so a rebinding answer cannot steer it elsewhere. A plain-HTTP connection carries one
request: its Host must name its target, and nothing after its Content-Length body is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from codefactory.sandbox.egress import (
    EgressAttempt,
    EgressPolicy,
    canonical_host,
    is_address,
    parse_port,
    screen_addresses,
    split_authority,
)

HEAD_LIMIT = 64 * 1024
HEAD_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "te", "trailer", "upgrade", "host"}  # Host is rewritten
)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 §5.6.2
_FORBIDDEN_IN_LINE = re.compile(r"[\x00\r\n]")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_PHRASES = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}


@dataclass
class EgressChannel:
    """One command's way out: its socket, its policy and what it tried."""

    path: Path
    run_id: str
    phase: str
    policy: EgressPolicy
    attempts: list[EgressAttempt] = field(default_factory=list)
    owner: tuple[int, int] | None = None
    """Who may connect: the uid/gid of the sandboxed command (None: this process's user)."""
    server: asyncio.AbstractServer | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def record(self, request: ProxyRequest, *, allowed: bool, reason: str) -> None:
        self.attempts.append(
            EgressAttempt(
                run_id=self.run_id,
                phase=self.phase,
                host=request.host,
                port=request.port,
                allowed=allowed,
                reason=reason,
                method=request.method,
            )
        )


class EgressProxy:
    """Serves channels; its event-loop thread runs only while a channel is open.

    `socket_owner` (uid, gid) is who runs the sandboxed commands when that is not this
    process's user: each channel's socket is then theirs (mode 0600), in folders they may
    traverse but not list (0711).
    """

    def __init__(self, socket_owner: tuple[int, int] | None = None) -> None:
        self._socket_owner = socket_owner
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._folder: Path | None = None
        self._lock = threading.Lock()
        self._open = 0
        self._count = 0

    def open(
        self,
        *,
        run_id: str,
        phase: str,
        policy: EgressPolicy,
        socket_owner: tuple[int, int] | None = None,
    ) -> EgressChannel:
        """A new listening socket for one command; `socket_owner` overrides the proxy's."""
        with self._lock:
            if self._loop is None:
                self._folder = Path(tempfile.mkdtemp(prefix="cf-egress-"))
                self._folder.chmod(0o711)  # each channel's own folder decides who may enter
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._loop.run_forever, name="egress-proxy", daemon=True
                )
                self._thread.start()
            assert self._folder is not None
            self._count += 1
            home = self._folder / str(self._count)
            home.mkdir(mode=0o700)  # 0711 once the socket in it has its owner and mode
            self._open += 1
            loop = self._loop
        channel = EgressChannel(
            path=home / "egress.sock",
            run_id=run_id,
            phase=phase,
            policy=policy,
            owner=socket_owner or self._socket_owner,
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
            shutil.rmtree(channel.path.parent, ignore_errors=True)
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

        channel.server = await asyncio.start_unix_server(
            accept, path=str(channel.path), limit=HEAD_LIMIT
        )
        channel.path.chmod(0o600)
        if channel.owner is not None:
            os.chown(channel.path, *channel.owner, follow_symlinks=False)
            channel.path.parent.chmod(0o711)


async def _stop(channel: EgressChannel) -> None:
    if channel.server is not None:
        channel.server.close()
        await channel.server.wait_closed()
    for task in list(channel.tasks):
        task.cancel()
    await asyncio.gather(*channel.tasks, return_exceptions=True)
    for _ in range(3):  # let the transports' scheduled closes run
        await asyncio.sleep(0)


@dataclass(frozen=True, kw_only=True)
class ProxyRequest:
    """One request as the proxy understood it; `host` is canonical (`canonical_host`)."""

    method: str
    host: str = ""
    port: int = 0
    spelled: str = ""
    forward: bytes | None = None
    """The head to send upstream; None for CONNECT."""
    body_length: int = 0


class Refusal(Exception):
    """A request the proxy answers itself (400 or 403); it is recorded as a denied attempt."""

    def __init__(self, status: int, reason: str, request: ProxyRequest) -> None:
        super().__init__(reason)
        self.status, self.reason, self.request = status, reason, request

    @property
    def message(self) -> str:
        if self.status == 400:
            return self.reason
        where = f"{self.request.host}:{self.request.port}"
        return f"egress to {where} denied: {self.reason}"


async def _handle(
    channel: EgressChannel, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        head = await _read_head(reader)
        if head is None:
            return
        request = parse_request(head)
        reason, addresses, numeric = await _decide(channel.policy, request)
    except Refusal as refusal:
        channel.record(refusal.request, allowed=False, reason=refusal.reason)
        await _refuse(writer, refusal.status, refusal.message)
        return
    await _forward(channel, request, reason, addresses, numeric, reader, writer)


async def _forward(
    channel: EgressChannel,
    request: ProxyRequest,
    reason: str,
    addresses: Sequence[tuple[str, int]],
    numeric: bool,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    where = f"{request.host}:{request.port}"
    try:
        up_reader, up_writer, address = await _connect(addresses, numeric)
    except OSError as err:
        channel.record(request, allowed=True, reason=f"{reason}; unreachable: {err}")
        await _refuse(writer, 502, f"could not reach {where}: {err}")
        return
    if numeric and address != request.host:
        reason = f"{reason}; connected to {address}"
    channel.record(request, allowed=True, reason=reason)
    if request.forward is None:
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await _splice(reader, writer, up_reader, up_writer)
    else:
        up_writer.write(request.forward)
        await _exchange(reader, writer, up_reader, up_writer, request.body_length)


_UNKNOWN = ProxyRequest(method="")


async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
    """The request head, or None when the client sent nothing before closing or timing out."""
    try:
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
    except asyncio.IncompleteReadError as err:
        if err.partial.strip():
            raise Refusal(400, "malformed request: no blank line ends its head", _UNKNOWN) from None
        return None
    except asyncio.LimitOverrunError:
        raise Refusal(400, f"malformed request: a head over {HEAD_LIMIT} bytes", _UNKNOWN) from None
    except TimeoutError:
        return None


async def _decide(
    policy: EgressPolicy, request: ProxyRequest
) -> tuple[str, list[tuple[str, int]], bool]:
    """(why allowed, the addresses to try in order, whether they are checked literals)."""
    allowed, reason = policy.decide(request.host, request.port)
    if request.spelled.lower().strip("[]") != request.host:
        reason = f"{reason} (requested as {request.spelled!r})"
    if not allowed:
        raise Refusal(403, reason, request)
    try:
        mapped = policy.address(request.host, request.port)
    except ValueError as err:
        why = f"{reason}, but the operator's resolve entry is wrong: {err}"
        raise Refusal(403, why, request) from None
    if mapped is not None:  # the operator's explicit map, the one way to a local address
        return f"{reason}; mapped to {mapped[0]}:{mapped[1]}", [mapped], False
    if is_address(request.host):
        candidates, resolved = [request.host], ""
    else:  # resolved once, here; every answer screened
        candidates = await _resolve(request, reason)
        resolved = f"{request.host} resolves only to refused addresses: "
    passing, refused = screen_addresses(candidates)
    if not passing:
        raise Refusal(403, f"{reason}, but {resolved}{'; '.join(refused)}", request)
    return reason, [(address, request.port) for address in passing], True


async def _resolve(request: ProxyRequest, reason: str) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(request.host, request.port, type=socket.SOCK_STREAM),
            CONNECT_TIMEOUT_S,
        )
    except OSError as err:  # socket.gaierror, TimeoutError
        raise Refusal(403, f"{reason}, but the name does not resolve: {err}", request) from None
    return [str(info[4][0]) for info in infos]


async def _connect(
    addresses: Sequence[tuple[str, int]], numeric: bool
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str]:
    """The first of `addresses` that answers; a checked literal is never resolved again."""
    error: OSError = OSError("no address to connect to")
    for address, port in addresses:
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(
                    address, port, flags=socket.AI_NUMERICHOST if numeric else 0
                ),
                CONNECT_TIMEOUT_S,
            )
        except OSError as err:  # TimeoutError too
            error = err
        else:
            return up_reader, up_writer, address
    raise error


def parse_request(head: bytes) -> ProxyRequest:
    """The request in `head` (up to and with its blank line); a Refusal when it may not pass."""
    lines = head.decode("latin-1").removesuffix("\r\n\r\n").split("\r\n")
    words = lines[0].split(" ")
    so_far = ProxyRequest(method=words[0] if _TOKEN.fullmatch(words[0]) else "")
    if len(words) != 3 or not so_far.method or words[2] not in ("HTTP/1.0", "HTTP/1.1"):
        raise Refusal(400, f"malformed request line {lines[0][:100]!r}", so_far)
    if any(_FORBIDDEN_IN_LINE.search(line) for line in lines):
        raise Refusal(400, "malformed request: a bare CR, LF or NUL in its head", so_far)
    fields = _fields(lines[1:], so_far)
    if so_far.method == "CONNECT":
        return _connect_request(words[1])
    return _http_request(so_far, words[1], words[2], fields)


def _fields(lines: list[str], so_far: ProxyRequest) -> list[tuple[str, str, str]]:
    """(lower-case name, value, line) of each header field."""
    fields = []
    for line in lines:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):  # obs-fold and `Name :` too
            raise Refusal(400, f"malformed header line {line[:100]!r}", so_far)
        fields.append((name.lower(), value.strip(" \t"), line))
    return fields


def _connect_request(target: str) -> ProxyRequest:
    try:
        spelled, port = split_authority(target)
        return ProxyRequest(
            method="CONNECT", host=canonical_host(spelled), port=parse_port(port), spelled=spelled
        )
    except ValueError as err:
        why = f"malformed CONNECT target {target[:100]!r}: {err}"
        raise Refusal(400, why, ProxyRequest(method="CONNECT")) from None


def _http_request(
    so_far: ProxyRequest, target: str, version: str, fields: list[tuple[str, str, str]]
) -> ProxyRequest:
    request = _absolute_target(so_far, target)
    why_not = _host_mismatch(
        [value for name, value, _ in fields if name == "host"], version, request
    )
    if why_not:
        raise Refusal(403, why_not, request)
    try:
        body_length = _body_length(fields)
    except ValueError as err:
        raise Refusal(400, str(err), request) from None
    authority = f"[{request.host}]" if ":" in request.host else request.host
    authority += f":{request.port}" if request.port != 80 else ""
    hop = HOP_BY_HOP | _connection_options(fields)
    kept = [line for name, _, line in fields if name not in hop and not name.startswith("proxy-")]
    head = [f"{request.method} {_path(target)} {version}", f"Host: {authority}", *kept]
    forward = ("\r\n".join([*head, "Connection: close", "", ""])).encode("latin-1")
    return replace(request, forward=forward, body_length=body_length)


def _absolute_target(so_far: ProxyRequest, target: str) -> ProxyRequest:
    """The host and port of an `http://` request target."""
    try:
        if _CONTROL.search(target):
            raise ValueError("control characters or spaces in it")
        url = urlsplit(target)
        if url.scheme.lower() != "http":
            raise ValueError("only http:// targets are proxied (CONNECT for https)")
        if "@" in url.netloc:
            raise ValueError("it carries userinfo")
        if "#" in target:
            raise ValueError("a fragment has no place in a request")
        spelled, port = split_authority(url.netloc)
        host, number = canonical_host(spelled), parse_port(port) if port else 80
    except ValueError as err:
        raise Refusal(400, f"malformed request target {target[:100]!r}: {err}", so_far) from None
    return replace(so_far, host=host, port=number, spelled=spelled)


def _path(target: str) -> str:
    url = urlsplit(target)
    return (url.path or "/") + (f"?{url.query}" if url.query else "")


def _host_mismatch(hosts: list[str], version: str, target: ProxyRequest) -> str:
    """Why the Host header does not name the target; empty when it does (RFC 9112 §3.2)."""
    if len(hosts) > 1:
        return f"{len(hosts)} Host headers in one request"
    if not hosts:
        return "no Host header in an HTTP/1.1 request" if version == "HTTP/1.1" else ""
    try:
        spelled, named_port = split_authority(hosts[0])
        named = (canonical_host(spelled), parse_port(named_port) if named_port else 80)
    except ValueError:
        named = None
    if named != (target.host, target.port):
        where = f"{target.host}:{target.port}"
        return f"the Host header {hosts[0][:100]!r} does not name the request target {where}"
    return ""


def _body_length(fields: list[tuple[str, str, str]]) -> int:
    if any(name == "transfer-encoding" for name, _, _ in fields):
        raise ValueError("a Transfer-Encoding request body; send it with Content-Length")
    lengths = [value for name, value, _ in fields if name == "content-length"]
    if len(lengths) > 1 or (lengths and not re.fullmatch(r"[0-9]{1,15}", lengths[0])):
        raise ValueError(f"a malformed Content-Length: {lengths}")
    return int(lengths[0]) if lengths else 0


def _connection_options(fields: list[tuple[str, str, str]]) -> frozenset[str]:
    """The fields that the Connection header names hop-by-hop (RFC 9110 §7.6.1)."""
    named = (value.split(",") for name, value, _ in fields if name == "connection")
    return frozenset(option.strip().lower() for options in named for option in options)


async def _refuse(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    body = (message + "\n").encode()
    writer.write(
        f"HTTP/1.1 {status} {_PHRASES[status]}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(OSError):
        await writer.drain()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    with contextlib.suppress(OSError):
        sink.write_eof()


async def _splice(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    try:
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
    finally:
        up_writer.close()


async def _exchange(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
    body_length: int,
) -> None:
    """One request's body upstream, exactly `body_length` bytes; its answer back."""

    async def body() -> None:
        remaining = body_length
        with contextlib.suppress(OSError):
            while remaining:
                data = await reader.read(min(remaining, 65536))
                if not data:  # the client gave up: so does the request
                    up_writer.close()
                    return
                up_writer.write(data)
                await up_writer.drain()
                remaining -= len(data)
        # nothing more is read from the client: a pipelined request never leaves

    try:
        await asyncio.gather(body(), _pipe(up_reader, writer))
    finally:
        up_writer.close()
