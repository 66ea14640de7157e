"""Audit events streamed to a SIEM: real UDP and TCP listeners on 127.0.0.1 parse what arrives
(RFC 5424 header and structured data, RFC 6587 octet counting, OCSF's required fields); a SIEM
that is down never blocks an append and its dropped events are counted and reported."""

from __future__ import annotations

import json
import re
import socket
import ssl
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from codefactory.audit.settings import SiemSettings
from codefactory.audit.siem import SiemStream, StreamedAuditLog, stored_drops
from codefactory.audit.sql import SqlAuditLog
from codefactory.cli import app
from codefactory.domain import AuditEvent, UnknownEvent
from codefactory.store.db import open_engine

RFC5424 = re.compile(
    rb"<(?P<pri>\d{1,3})>1 (?P<time>\S+) (?P<host>\S+) (?P<app>\S+) (?P<pid>\S+) (?P<msgid>\S+) "
    rb"(?P<sd>\[(?:[^\]\\]|\\.)*\]) \xef\xbb\xbf(?P<msg>.*)",
    re.DOTALL,
)
SD_PARAM = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
OCSF_REQUIRED = (
    "activity_id", "category_uid", "class_uid", "type_uid", "severity_id", "time", "metadata",
    "actor", "api", "src_endpoint", "cloud",
)  # fmt: skip


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return open_engine(f"sqlite:///{tmp_path / 'factory.db'}")


def event(name: str, **data: Any) -> AuditEvent:
    return UnknownEvent(
        kind=name, actor="user:ana", run_id="r-1", payload=data, at=datetime.now(UTC)
    )


class TcpSiem:
    """A TCP listener reading RFC 6587 octet-counted frames."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.frames: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        connection, _ = self.server.accept()
        if self.tls is not None:
            try:
                connection = self.tls.wrap_socket(connection, server_side=True)
            except ssl.SSLError:  # the client refused the certificate
                connection.close()
                return
        with connection:
            self._read(connection)

    def close(self) -> None:
        self.server.close()

    def _read(self, connection: socket.socket) -> None:
        buffer = b""
        while chunk := connection.recv(65536):
            buffer += chunk
            while b" " in buffer:
                length, _, rest = buffer.partition(b" ")
                if len(rest) < int(length):
                    break
                self.frames.append(rest[: int(length)])
                buffer = rest[int(length) :]

    def wait(self, count: int) -> list[bytes]:
        deadline = time.monotonic() + 15
        while len(self.frames) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.frames


def test_syslog_over_udp_after_commit_only(engine: Engine, tmp_path: Path) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(5)
    settings = SiemSettings(format="syslog", target=f"udp://127.0.0.1:{listener.getsockname()[1]}")
    sql = SqlAuditLog(engine)
    stream = SiemStream(settings, state_dir=tmp_path, log_name=sql.origin, hostname="factory-1")
    audit = StreamedAuditLog(sql, stream)
    try:
        audit.append(event("run-started", ticket='a "quoted" ]bracket\\'))
        with Session(engine) as session, session.begin():
            audit.append(event("never-committed"), session=session)
            session.rollback()
        with Session(engine) as session, session.begin():
            audit.append(event("review-refused", why="x"), session=session)
            stream.flush()
            listener.settimeout(5)
            first = listener.recv(65536)
            listener.settimeout(0.2)
            with pytest.raises(TimeoutError):  # not sent before the commit
                listener.recv(65536)
        listener.settimeout(5)
        second = listener.recv(65536)
    finally:
        stream.close()
        listener.close()
    records = sql.events()
    parsed = [RFC5424.fullmatch(message) for message in (first, second)]
    assert all(parsed), (first, second)
    one, two = (match.groupdict() for match in parsed if match)
    assert (int(one["pri"]), int(two["pri"])) == (13 * 8 + 6, 13 * 8 + 4)  # log audit; warning
    assert one["host"] == b"factory-1" and one["app"] == b"codefactory"
    assert one["msgid"] == b"run-started" and two["msgid"] == b"review-refused"
    assert datetime.fromisoformat(one["time"].decode().replace("Z", "+00:00")).tzinfo
    params = dict(SD_PARAM.findall(one["sd"].decode()))
    assert one["sd"].startswith(b"[codefactory@32473 ")
    assert params == {
        "name": "run-started",
        "seq": "0",
        "leafHash": records[0].leaf_hash,
        "actor": "user:ana",
        "runId": "r-1",
        "log": sql.origin,
    }
    assert json.loads(one["msg"]) == {"ticket": 'a "quoted" ]bracket\\'}
    assert dict(SD_PARAM.findall(two["sd"].decode()))["seq"] == "1"  # the rollback left no leaf
    assert [r.name for r in records] == ["run-started", "review-refused"]


def test_ocsf_over_tcp_octet_counting(engine: Engine, tmp_path: Path) -> None:
    siem = TcpSiem()
    settings = SiemSettings(format="ocsf", target=f"tcp://127.0.0.1:{siem.port}")
    sql = SqlAuditLog(engine)
    stream = SiemStream(settings, state_dir=tmp_path, log_name=sql.origin)
    audit = StreamedAuditLog(sql, stream)
    try:
        for name in ("agent-suspended", "token-revoked", "run-started", "witness-failed"):
            audit.append(event(name, note="line\nbreak"))
        frames = siem.wait(4)
    finally:
        stream.close()
        siem.close()
    documents = [json.loads(frame) for frame in frames]
    assert len(documents) == 4
    for seq, document in enumerate(documents):
        assert all(key in document for key in OCSF_REQUIRED), document
        assert (document["class_uid"], document["category_uid"]) == (6003, 6)
        assert document["type_uid"] == 600300 + document["activity_id"]
        assert document["metadata"]["version"] == "1.3.0"
        assert document["metadata"]["product"]["name"] == "Code Factory"
        assert document["metadata"]["uid"] == f"{sql.origin}/{seq}"
        assert document["unmapped"]["leaf_hash"] == sql.events()[seq].leaf_hash
        assert document["actor"]["user"]["uid"] == "user:ana"
        assert abs(document["time"] / 1000 - time.time()) < 60
    assert [d["activity_id"] for d in documents] == [3, 4, 1, 99]
    assert [d["status_id"] for d in documents] == [1, 1, 1, 2]
    assert documents[3]["severity_id"] == 3


def test_a_siem_that_is_down_never_blocks_and_drops_are_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stalled = socket.socket()  # a SIEM that hangs: its one-slot backlog is taken, so every
    stalled.bind(("127.0.0.1", 0))  # further connection waits until the timeout
    stalled.listen(0)
    filler = socket.create_connection(stalled.getsockname())
    data = tmp_path / "data"
    monkeypatch.setenv(
        "CODEFACTORY_AUDIT__SIEM__TARGET", f"tcp://127.0.0.1:{stalled.getsockname()[1]}"
    )
    monkeypatch.setenv("CODEFACTORY_AUDIT__SIEM__QUEUE_SIZE", "2")
    monkeypatch.setenv("CODEFACTORY_AUDIT__SIEM__TIMEOUT_S", "0.3")
    from codefactory.config import Settings
    from codefactory.factory import build_factory

    try:
        audit = build_factory(Settings(data_dir=data)).audit
        started = time.monotonic()
        for i in range(20):
            audit.append(event("step-done", i=i))
        assert time.monotonic() - started < 5  # waiting on the SIEM would take 20 x 0.6 s
        deadline = time.monotonic() + 15
        while stored_drops(data) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        filler.close()
        stalled.close()
    assert stored_drops(data) >= 20
    result = CliRunner().invoke(app, ["--data-dir", str(data), "audit", "verify", "--json"])
    report = json.loads(result.stdout)
    assert report["siem"]["dropped"] >= 20
    assert any("not delivered to the SIEM" in warning for warning in report["warnings"])


def test_file_target_writes_json_lines(engine: Engine, tmp_path: Path) -> None:
    target = tmp_path / "siem" / "audit.jsonl"
    target.parent.mkdir()
    sql = SqlAuditLog(engine)
    stream = SiemStream(SiemSettings(target=str(target)), state_dir=tmp_path, log_name=sql.origin)
    audit = StreamedAuditLog(sql, stream)
    audit.append(event("run-started", text="two\nlines"))
    stream.close()
    (line,) = target.read_text().splitlines()
    assert json.loads(line)["api"]["operation"] == "run-started"
    with pytest.raises(ValueError, match="tls://host:port"):
        SiemSettings(target="udp://nohost")
    with pytest.raises(ValueError, match="file path"):
        SiemSettings(target="https://siem.example/")


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (IP SAN) and its key, as PEM files."""
    import ipaddress
    from datetime import timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "siem.test")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "siem.pem", folder / "siem.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_syslog_over_tls_checks_the_certificate(engine: Engine, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    siem = TcpSiem(server_context)
    target = f"tls://127.0.0.1:{siem.port}"
    sql = SqlAuditLog(engine)
    trusted = SiemSettings(format="syslog", target=target, ca_file=cert)
    stream = SiemStream(trusted, state_dir=tmp_path, log_name=sql.origin)
    try:
        StreamedAuditLog(sql, stream).append(event("run-started"))
        (frame,) = siem.wait(1)
    finally:
        stream.close()
        siem.close()
    match = RFC5424.fullmatch(frame)
    assert match is not None and match["msgid"] == b"run-started"
    # without the CA the certificate does not verify: the event is dropped, never sent clear
    untrusting = TcpSiem(server_context)
    settings = SiemSettings(format="syslog", target=f"tls://127.0.0.1:{untrusting.port}")
    (tmp_path / "other").mkdir()
    stream = SiemStream(settings, state_dir=tmp_path / "other", log_name=sql.origin)
    try:
        StreamedAuditLog(sql, stream).append(event("run-started"))
        stream.flush()
    finally:
        stream.close()
        untrusting.close()
    assert stored_drops(tmp_path / "other") == 1 and untrusting.frames == []
