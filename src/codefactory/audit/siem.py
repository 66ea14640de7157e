"""Stream audit events to a SIEM, never blocking a run.

`StreamedAuditLog` wraps the audit log (as `AuditedSandbox` wraps the sandbox): after an
append is committed (at once without a session; at the session's commit otherwise, never
after a rollback) the event is formatted (`siem_format.py`) and put on a bounded queue that a
daemon thread sends to the target:

- `udp://host:port`: one message per datagram (RFC 5426 for syslog);
- `tcp://host:port`: RFC 6587 octet counting, `<length> <message>`, one connection kept
  open and reopened once on error;
- `tls://host:port`: the same over TLS (RFC 5425), the server's certificate checked against
  the system's roots or `audit.siem.ca_file`, and its name against the host;
- anything else is a file path: one message a line, appended (JSON lines for OCSF).

A full queue, or a message that cannot be sent, is dropped and counted; the count is kept in
`siem-dropped.json` in the data folder (approximate across concurrent processes) and shown by
`audit verify` (and `--json`). At exit the queue is drained for at most two seconds.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import socket
import ssl
import threading
import time
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from codefactory.audit.leaf import stored_leaf
from codefactory.audit.port import (
    AuditLog,
    ForwardingAuditLog,
)
from codefactory.audit.settings import SiemSettings
from codefactory.audit.siem_format import SiemEvent, ocsf_line, syslog
from codefactory.domain import AuditEvent

log = logging.getLogger(__name__)
DROPPED_FILE = "siem-dropped.json"
_PENDING = "codefactory.siem.pending"
_STOP = object()


class Transport(Protocol):
    def send(self, message: bytes) -> None: ...

    def close(self) -> None: ...


class UdpTransport:
    def __init__(self, host: str, port: int) -> None:
        self._address = (host, port)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_DGRAM)

    def send(self, message: bytes) -> None:
        self._socket.sendto(message[:65000], self._address)

    def close(self) -> None:
        self._socket.close()


class TcpTransport:
    """RFC 6587 §3.4.1 octet counting: `MSG-LEN SP SYSLOG-MSG`."""

    def __init__(self, host: str, port: int, timeout_s: float) -> None:
        self._address = (host, port)
        self._timeout_s = timeout_s
        self._socket: socket.socket | None = None

    def send(self, message: bytes) -> None:
        frame = f"{len(message)} ".encode() + message
        for attempt in range(2):
            try:
                if self._socket is None:
                    self._socket = self._connect()
                self._socket.sendall(frame)
                return
            except ssl.SSLCertVerificationError:  # not transient: no second try
                self.close()
                raise
            except OSError:
                self.close()
                if attempt:
                    raise

    def _connect(self) -> socket.socket:
        return socket.create_connection(self._address, self._timeout_s)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class TlsTransport(TcpTransport):
    """RFC 5425: octet-counted frames over TLS; the certificate and host name are checked."""

    def __init__(self, host: str, port: int, timeout_s: float, ca_file: Path | None) -> None:
        super().__init__(host, port, timeout_s)
        self._context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self._host = host

    def _connect(self) -> socket.socket:
        raw = super()._connect()
        try:
            return self._context.wrap_socket(raw, server_hostname=self._host)
        except BaseException:
            raw.close()
            raise


class FileTransport:
    def __init__(self, path: Path) -> None:
        self._path = path

    def send(self, message: bytes) -> None:
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "ab") as handle:
            handle.write(message.replace(b"\n", b" ") + b"\n")

    def close(self) -> None:
        pass


def transport_for(settings: SiemSettings) -> Transport:
    """The transport of `settings.target`; ValueError for a malformed URL."""
    target = settings.target
    if target.startswith(("udp://", "tcp://", "tls://")):
        parts = urlsplit(target)
        if not parts.hostname or parts.port is None:
            raise ValueError(f"audit.siem.target {target!r} needs a host and a port")
        if parts.scheme == "udp":
            return UdpTransport(parts.hostname, parts.port)
        if parts.scheme == "tls":
            return TlsTransport(parts.hostname, parts.port, settings.timeout_s, settings.ca_file)
        return TcpTransport(parts.hostname, parts.port, settings.timeout_s)
    return FileTransport(Path(target).expanduser())


class SiemStream:
    """The bounded queue and its sender thread."""

    def __init__(
        self,
        settings: SiemSettings,
        *,
        state_dir: Path,
        log_name: str,
        transport: Transport | None = None,
        hostname: str | None = None,
    ) -> None:
        self.settings = settings
        self.log_name = log_name
        self.hostname = hostname or socket.gethostname()
        self._transport = transport or transport_for(settings)
        self._queue: queue.Queue[object] = queue.Queue(maxsize=settings.queue_size)
        self._state = state_dir / DROPPED_FILE
        self._lock = threading.Lock()
        self.dropped = 0
        self.sent = 0
        self._thread = threading.Thread(target=self._run, daemon=True, name="siem")
        self._thread.start()
        atexit.register(self.close)

    def format(self, event: SiemEvent) -> bytes:
        if self.settings.format == "syslog":
            return syslog(event, hostname=self.hostname, sd_id=self.settings.sd_id)
        return ocsf_line(event, hostname=self.hostname)

    def send(self, event: SiemEvent) -> None:
        """Queue `event`; never blocks, never raises (a full queue drops and counts)."""
        try:
            self._queue.put_nowait(self.format(event))
        except queue.Full:
            self._drop("the queue is full")
        except Exception:  # a formatting bug must not break the run either
            log.exception("siem: event %s could not be formatted", event.seq)
            self._drop("unformattable")

    def _run(self) -> None:
        while True:
            message = self._queue.get()
            try:
                if message is _STOP:
                    return
                assert isinstance(message, bytes)
                self._transport.send(message)
                self.sent += 1
            except Exception as error:  # noqa: BLE001 - any failure is a dropped event
                self._drop(f"{type(error).__name__}: {error}")
            finally:
                self._queue.task_done()

    def _drop(self, reason: str) -> None:
        with self._lock:
            self.dropped += 1
            total = self._stored() + 1
            try:
                self._state.write_text(json.dumps({"dropped": total}), encoding="utf-8")
            except OSError:
                pass
        if self.dropped == 1 or self.dropped % 100 == 0:  # not one line per lost event
            log.warning("siem: an audit event was dropped (%s); %d dropped so far", reason, total)

    def _stored(self) -> int:
        return stored_drops(self._state.parent)

    def flush(self, timeout_s: float = 2.0) -> bool:
        """Wait until the queue is empty (True) or `timeout_s` passes (False)."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        """Drain for at most two seconds, then stop the sender."""
        if not self._thread.is_alive():
            return
        self.flush(2.0)
        try:
            self._queue.put_nowait(_STOP)
        except queue.Full:
            pass
        self._thread.join(0.5)
        self._transport.close()

    def status(self) -> dict[str, Any]:
        return {
            "format": self.settings.format,
            "target": self.settings.target,
            "dropped": stored_drops(self._state.parent),
            "queued": self._queue.qsize(),
        }


def stored_drops(state_dir: Path) -> int:
    """How many events were dropped so far (every process of this data folder)."""
    try:
        return int(json.loads((state_dir / DROPPED_FILE).read_text(encoding="utf-8"))["dropped"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


class StreamedAuditLog(ForwardingAuditLog):
    """An `AuditLog` whose committed appends also go to a `SiemStream`."""

    def __init__(self, log: AuditLog, stream: SiemStream) -> None:
        super().__init__(log)
        self.stream = stream

    def append(self, event: AuditEvent, *, session: Session | None = None) -> int:
        seq = self._log.append(event, session=session)
        streamed = self._event(seq, event)
        if session is None:
            self.stream.send(streamed)
        else:
            _pending(session, self.stream.send).append(streamed)
        return seq

    def _event(self, seq: int, event: AuditEvent) -> SiemEvent:
        return SiemEvent(
            seq=seq,
            name=event.name,
            actor=event.actor,
            run_id=event.run_id,
            at=event.at if event.at.tzinfo else event.at.replace(tzinfo=UTC),
            data=event.data,
            leaf_hash=stored_leaf(seq, event).leaf_hash,
            log_name=self.stream.log_name,
        )


def _pending(session: Session, send: Callable[[SiemEvent], None]) -> list[SiemEvent]:
    """The session's events waiting for its commit; listeners registered once per session."""
    pending: list[SiemEvent] | None = session.info.get(_PENDING)
    if pending is None:
        pending = []
        session.info[_PENDING] = pending

        def committed(_session: Session) -> None:
            waiting = list(pending)
            pending.clear()
            for event in waiting:
                send(event)

        def rolled_back(_session: Session) -> None:
            pending.clear()

        sa_event.listen(session, "after_commit", committed)
        sa_event.listen(session, "after_rollback", rolled_back)
    return pending
