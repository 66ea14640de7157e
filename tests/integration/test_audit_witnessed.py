"""Witnessed checkpoints end to end: a factory, a witness on 127.0.0.1, the CLI in process.

The attack of issue 11: with full write access to the data folder (the database and the
issuer key file in it), rewrite an event, recompute every leaf hash and re-sign every
checkpoint. A plain `codefactory audit verify` must fail, naming the witness's evidence.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import sqlite3
import struct
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer.main
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from typer.testing import CliRunner

from codefactory.audit.checkpoint import Checkpoint
from codefactory.audit.leaf import StoredLeaf
from codefactory.audit.merkle import root_of
from codefactory.audit.note import parse_verifier
from codefactory.audit.port import AuditLog
from codefactory.cli import app
from codefactory.config import Settings
from codefactory.domain import UnknownEvent
from codefactory.factory import build_factory
from codefactory.identity.services import issuer_for
from codefactory.witness.keys import load_key
from codefactory.witness.protocol import Witness
from codefactory.witness.server import WitnessServer, serve_in_thread
from codefactory.witness.store import WitnessStore
from tests.store_sql import store_sql

WITNESSES_ENV = "CODEFACTORY_AUDIT__WITNESSES"


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.data = tmp_path / "data"
        self.runner = CliRunner()
        self.servers: list[WitnessServer] = []
        self._audit: AuditLog | None = None

    def cli(self, *args: str, code: int = 0) -> str:
        result = self.runner.invoke(app, ["--data-dir", str(self.data), *args])
        assert result.exit_code == code, (args, result.output)
        return result.output

    def json(self, *args: str) -> dict[str, Any]:
        result = self.runner.invoke(app, ["--data-dir", str(self.data), *args, "--json"])
        document: dict[str, Any] = json.loads(result.stdout)
        return document

    def witness(self, name: str, origin: str, log_key: str) -> tuple[str, str]:
        """Start a witness in its own folder; its URL and verifier key."""
        folder = self.tmp_path / f"witness-{name}"
        key = load_key(folder, f"{name}.witness.example")
        witness = Witness(
            key=key, store=WitnessStore(folder), logs={origin: [parse_verifier(log_key)]}
        )
        server = WitnessServer(("127.0.0.1", 0), witness)
        serve_in_thread(server)
        self.servers.append(server)
        return server.url, key.public.encoded()

    def append(self, count: int) -> None:
        audit = self.factory_audit()
        for i in range(count):
            audit.append(
                UnknownEvent(
                    kind="step-done", actor="user:ana", payload={"i": i}, at=datetime.now(UTC)
                )
            )

    def factory_audit(self) -> AuditLog:
        """One factory's log for appends and reads (the CLI builds its own each time)."""
        if self._audit is None:
            self._audit = build_factory(Settings(data_dir=self.data)).audit
        return self._audit

    def failures(self) -> list[dict[str, object]]:
        records = self.factory_audit().events()
        return [r.data for r in records if r.name == "witness-failed"]


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    # Typer rebuilds the whole command tree on every invoke (~0.3 s); build it once here
    command = typer.main.get_command(app)
    monkeypatch.setattr("typer.testing._get_command", lambda _app: command)
    harness = Harness(tmp_path)
    yield harness
    for server in harness.servers:
        server.shutdown()
        server.server_close()


def cosignature_holds(note: str, verifier_key: str) -> bool:
    """c2sp.org/tlog-cosignature checked from the spec with `cryptography` alone."""
    name, key_id, blob = verifier_key.split("+", 2)
    public = base64.b64decode(blob)[1:]
    text = note[: note.index("\n\n") + 1]
    for line in note[len(text) + 1 :].splitlines():
        if not line.startswith(f"\u2014 {name} "):
            continue
        raw = base64.b64decode(line.split(" ", 2)[2])
        assert raw[:4].hex() == key_id
        assert raw[:4] == hashlib.sha256(name.encode() + b"\n\x04" + public).digest()[:4]
        (stamp,) = struct.unpack(">Q", raw[4:12])
        message = f"cosignature/v1\ntime {stamp}\n".encode() + text.encode()
        Ed25519PublicKey.from_public_bytes(public).verify(raw[12:], message)
        return True
    return False


def rewrite_history(data: Path, *, seq: int) -> None:
    """What an insider with the data folder can do: edit an event, recompute every leaf hash,
    rebuild the subtree cache and re-sign every checkpoint with the issuer key file."""
    sign = issuer_for(Settings(data_dir=data)).note_signer
    with store_sql(data) as db:
        db.execute(f"""UPDATE audit_events SET data = '{{"i":999}}' WHERE seq = {seq}""")
        rows = db.execute(
            "SELECT seq, name, actor, run_id, at, data, leaf_hash FROM audit_events ORDER BY seq"
        ).fetchall()
        hashes = []
        for row in rows:
            leaf = StoredLeaf(
                seq=row[0], name=row[1], actor=row[2], run_id=row[3], at=row[4], data=row[5],
                leaf_hash=row[6],
            )  # fmt: skip
            new = leaf.recomputed_hash()
            assert new is not None
            hashes.append(bytes.fromhex(new))
            db.execute("UPDATE audit_events SET leaf_hash = ? WHERE seq = ?", (new, row[0]))
        db.execute("DELETE FROM audit_subtrees")
        origin = db.execute("SELECT origin FROM audit_log").fetchone()[0]
        for checkpoint_id, size in db.execute("SELECT id, size FROM audit_checkpoints").fetchall():
            root = root_of(hashes[:size])
            note = Checkpoint(origin=origin, size=size, root=root).sign(sign)
            db.execute(
                "UPDATE audit_checkpoints SET note = ?, root_hash = ? WHERE id = ?",
                (note, root.hex(), checkpoint_id),
            )


def test_a_history_rewritten_with_the_issuer_key_fails_on_the_witness_evidence(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    unwitnessed = harness.json("audit", "checkpoint")
    report = harness.json("audit", "verify")
    assert report["ok"] and report["witnessed"] is False
    assert "UNWITNESSED" in report["warnings"][0]
    assert "UNWITNESSED" in harness.cli("audit", "verify")

    url, witness_key = harness.witness("sec", unwitnessed["origin"], unwitnessed["verifier_key"])
    witnesses = [{"name": "security-team", "url": url, "verifier_key": witness_key}]
    monkeypatch.setenv(WITNESSES_ENV, json.dumps(witnesses))
    harness.append(5)
    note = harness.cli("audit", "checkpoint")
    assert cosignature_holds(note, witness_key), note
    verified = harness.json("audit", "verify")
    assert verified["ok"] and verified["witnessed"] is True, verified
    assert verified["witnesses"]["security-team"]["cosigned_latest"] is True
    older = verified["count"]
    harness.append(3)  # the next checkpoint goes with a consistency proof from the last one
    assert cosignature_holds(harness.cli("audit", "checkpoint"), witness_key)
    verified = harness.json("audit", "verify")
    newer = verified["count"]
    assert "cosigned by 1 of 1 witnesses" in verified["reason"]
    assert not [w for w in verified["warnings"] if "not yet witnessed" in w]
    assert harness.failures() == []
    # an event appended after the latest witnessed checkpoint is named until one covers it
    harness.append(1)
    tail = harness.json("audit", "verify")
    assert tail["ok"] and f"event {newer} (1 of {newer + 1})" in " ".join(tail["warnings"])
    with store_sql(harness.data) as db:
        db.execute(f"DELETE FROM audit_events WHERE seq >= {newer}")

    # a rollback: the newer checkpoint, its cosignature and the events after the older removed
    with store_sql(harness.data) as db:
        db.execute(f"DELETE FROM audit_checkpoints WHERE size = {newer}")
        db.execute(f"DELETE FROM audit_cosignatures WHERE size = {newer}")
        db.execute(f"DELETE FROM audit_events WHERE seq >= {older}")
    assert harness.json("audit", "verify", "--offline")["ok"] is True  # stored evidence alone
    failed = harness.cli("audit", "verify", code=1)  # the witness is asked: it holds more
    assert f"witness security-team cosigned a checkpoint of size {newer}" in failed, failed
    assert "rolled back" in failed

    # a rewrite: an event edited, every hash recomputed, every checkpoint re-signed
    rewrite_history(harness.data, seq=1)
    failed = harness.cli("audit", "verify", code=1)
    assert "cosigned by witness security-team" in failed and "rewritten" in failed, failed

    # the insider also removes the witness's cosignatures: the latest checkpoint lacks them
    with store_sql(harness.data) as db:
        db.execute("DELETE FROM audit_cosignatures")
    failed = harness.cli("audit", "verify", code=1)
    assert "no valid cosignature from: security-team" in failed, failed
    # and asks the witness to cosign the rewritten log: it refuses, and that is recorded
    assert not cosignature_holds(harness.cli("audit", "checkpoint"), witness_key)
    (refusal,) = harness.failures()
    assert refusal["witness"] == "security-team" and refusal["kind"] == "inconsistent"


def test_a_witness_down_slow_or_lying_never_blocks_and_is_recorded(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = harness.json("audit", "checkpoint")
    url, key = harness.witness("good", log["origin"], log["verifier_key"])
    liar_url, _ = harness.witness("liar", log["origin"], log["verifier_key"])
    _, other_key = harness.witness("other", log["origin"], log["verifier_key"])
    silent = socket.socket()  # accepts connections, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    closed = socket.socket()  # a port nobody listens on
    closed.bind(("127.0.0.1", 0))
    witnesses = [
        {"name": "good", "url": url, "verifier_key": key},
        {"name": "liar", "url": liar_url, "verifier_key": other_key},
        {
            "name": "slow",
            "url": f"http://127.0.0.1:{silent.getsockname()[1]}",
            "verifier_key": other_key,
        },
        {
            "name": "down",
            "url": f"http://127.0.0.1:{closed.getsockname()[1]}",
            "verifier_key": other_key,
        },
    ]
    monkeypatch.setenv(WITNESSES_ENV, json.dumps(witnesses))
    monkeypatch.setenv("CODEFACTORY_AUDIT__WITNESS_TIMEOUT_S", "0.3")
    try:
        harness.append(2)
        assert cosignature_holds(harness.cli("audit", "checkpoint"), key)
        kinds = {f["witness"]: f["kind"] for f in harness.failures()}
        assert kinds == {"liar": "bad-cosignature", "slow": "timeout", "down": "unreachable"}
        failed = harness.cli("audit", "verify", code=1)
        assert "cosigned by 1 of the 4 witnesses required" in failed
        monkeypatch.setenv("CODEFACTORY_AUDIT__WITNESS_QUORUM", "1")
        report = harness.json("audit", "verify")
        assert report["ok"], report
        assert report["witnesses"]["liar"]["cosigned_latest"] is False

        # the good witness loses its state: verify notices, the next checkpoint records it
        with sqlite3.connect(harness.tmp_path / "witness-good" / "witness.db") as db:
            db.execute("DELETE FROM cosigned")
        assert "good holds size 0 only" in harness.cli("audit", "verify", code=1)
        harness.append(1)
        assert cosignature_holds(harness.cli("audit", "checkpoint"), key)
        assert [f["kind"] for f in harness.failures() if f["witness"] == "good"] == ["reset"]
        harness.cli("audit", "verify")
    finally:
        silent.close()
        closed.close()
