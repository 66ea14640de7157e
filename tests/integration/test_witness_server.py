"""`codefactory witness serve` against adversarial callers over real HTTP on 127.0.0.1, and its
cosignatures checked by a C2SP tlog-cosignature verifier written here from the spec with
`cryptography` alone (none of the project's note code)."""

from __future__ import annotations

import base64
import hashlib
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from typer.testing import CliRunner

from codefactory.audit.checkpoint import Checkpoint
from codefactory.audit.merkle import LeafList, consistency_proof, hash_leaf, root_of
from codefactory.audit.note import NoteVerifier
from codefactory.cli import app
from codefactory.witness.keys import WitnessSetupError, load_key, token_key
from codefactory.witness.protocol import Witness
from codefactory.witness.server import WitnessServer, serve_in_thread
from codefactory.witness.store import WitnessStore

ORIGIN = "bank.example/audit/1"


def leaves(n: int, tag: bytes = b"") -> list[bytes]:
    return [hash_leaf(tag + bytes([i])) for i in range(n)]


class Log:
    """A log's key and the checkpoints it signs."""

    def __init__(self, origin: str = ORIGIN) -> None:
        self.origin = origin
        self.key = Ed25519PrivateKey.generate()
        self.public = self.key.public_key().public_bytes_raw()

    def sign(self, message: bytes) -> tuple[bytes, bytes]:
        return self.public, self.key.sign(message)

    def note(self, tree: list[bytes]) -> str:
        return Checkpoint(origin=self.origin, size=len(tree), root=root_of(tree)).sign(self.sign)

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier(name=self.origin, public_key=self.public)


def body(old: int, proof: list[bytes], note: str) -> bytes:
    lines = [f"old {old}", *(base64.b64encode(h).decode() for h in proof)]
    return ("\n".join(lines) + "\n\n" + note).encode()


@pytest.fixture
def log() -> Log:
    return Log()


@pytest.fixture
def witness_url(tmp_path: Path, log: Log) -> Iterator[str]:
    key = load_key(tmp_path / "witness", "witness.sec.example")
    store = WitnessStore(tmp_path / "witness")
    witness = Witness(key=key, store=store, logs={ORIGIN: [log.verifier]})
    server = WitnessServer(("127.0.0.1", 0), witness, max_connections=2, deadline_s=1.0)
    serve_in_thread(server)
    yield server.url
    server.shutdown()
    server.server_close()


HTTP = httpx.Client(timeout=5)  # one TLS context for the module: each new one costs ~50 ms


def post(url: str, data: bytes) -> httpx.Response:
    return HTTP.post(url + "/add-checkpoint", content=data)


def independent_verify(note: str, line: str, name: str, public: bytes) -> int:
    """c2sp.org/tlog-cosignature from the spec: key ID = SHA-256(name || 0x0A || 0x04 ||
    key)[:4]; blob = key ID || uint64 BE time || Ed25519 signature over
    'cosignature/v1\\ntime <t>\\n' || note text. Returns the time."""
    text = note[: note.index("\n\n") + 1]
    prefix = "\u2014 " + name + " "
    assert line.startswith(prefix)
    blob = base64.b64decode(line[len(prefix) :].strip())
    assert len(blob) == 76
    assert blob[:4] == hashlib.sha256(name.encode() + b"\n\x04" + public).digest()[:4]
    (timestamp,) = struct.unpack(">Q", blob[4:12])
    message = b"cosignature/v1\ntime " + str(timestamp).encode() + b"\n" + text.encode()
    Ed25519PublicKey.from_public_bytes(public).verify(blob[12:], message)  # raises if bad
    return int(timestamp)


def test_cosigns_consistent_checkpoints_and_refuses_the_rest(
    witness_url: str, log: Log, tmp_path: Path
) -> None:
    key = load_key(tmp_path / "witness")
    tree = leaves(5)
    first = post(witness_url, body(0, [], log.note(tree)))
    assert first.status_code == 200, first.text
    (line,) = first.text.splitlines()
    assert (
        abs(independent_verify(log.note(tree), line, key.name, key.public.public_key) - time.time())
        < 60
    )

    # a second caller still thinking the witness is at 0: 409 with the size it cosigned
    stale = post(witness_url, body(0, [], log.note(leaves(7))))
    assert stale.status_code == 409
    assert stale.headers["content-type"] == "text/x.tlog.size" and stale.text == "5\n"

    grown = leaves(9)
    proof = consistency_proof(LeafList(grown), 5, 9)
    assert post(witness_url, body(5, proof, log.note(grown))).status_code == 200

    # a fork: 12 leaves whose first 9 differ from what was cosigned, with its own honest proof
    fork = leaves(12, b"x")
    forged = post(witness_url, body(9, consistency_proof(LeafList(fork), 9, 12), log.note(fork)))
    assert forged.status_code == 422, forged.text
    # same size, another root: 409
    same = post(witness_url, body(9, [], log.note(leaves(9, b"y"))))
    assert (same.status_code, same.text) == (409, "9\n")
    # the same checkpoint again is cosigned again (idempotent)
    assert post(witness_url, body(9, [], log.note(grown))).status_code == 200


def test_refuses_unknown_logs_bad_signatures_and_malformed_bodies(
    witness_url: str, log: Log
) -> None:
    tree = leaves(3)
    assert post(witness_url, body(0, [], Log("other.example/log").note(tree))).status_code == 404
    impostor = Log()  # same origin, another key
    refused = post(witness_url, body(0, [], impostor.note(tree)))
    assert refused.status_code == 403, refused.text
    tampered = log.note(tree).replace("\n3\n", "\n4\n", 1)
    assert post(witness_url, body(0, [], tampered)).status_code == 403
    note = log.note(tree)
    for bad in (
        b"old 0\n" + note.encode(),  # no empty line
        body(0, [], note).replace(b"old 0", b"old -1"),
        body(0, [], note).replace(b"old 0", b"old 01"),
        body(0, [bytes(32)], note),  # a proof with old size 0
        body(1, [bytes(32)] * 64, note),  # too many proof lines
        body(1, [], note).replace(b"\n\n", b"\nnot base64!\n\n", 1),
        body(4, [], note),  # old size beyond the checkpoint
        b"\xff\xfe" + body(0, [], note),
        body(0, [], "origin only\n\n\u2014 x AAAA\n"),
    ):
        assert post(witness_url, bad).status_code == 400, bad[:60]
    assert HTTP.get(witness_url + "/add-checkpoint").status_code == 405
    assert post(witness_url.rstrip("/") + "/x", b"").status_code in (404,)
    huge = HTTP.post(witness_url + "/add-checkpoint", content=b"x" * 20000)
    assert huge.status_code == 413
    # nothing above changed its state: the first real checkpoint is still at old size 0
    assert post(witness_url, body(0, [], note)).status_code == 200


def test_idle_connections_are_cut_and_capped(witness_url: str, log: Log) -> None:
    host, port = witness_url.removeprefix("http://").split(":")
    idle = [socket.create_connection((host, int(port))) for _ in range(3)]
    try:
        time.sleep(0.1)
        # the third connection beyond the cap of two closes the client's oldest idle one
        idle[0].settimeout(2)
        assert idle[0].recv(10) == b""
        # the two others are cut at the one-second deadline; then the witness answers
        idle[1].settimeout(3)
        started = time.monotonic()
        assert idle[1].recv(10) == b""
        assert 0.5 < time.monotonic() - started < 2
        assert post(witness_url, body(0, [], log.note(leaves(2)))).status_code == 200
    finally:
        for sock in idle:
            sock.close()


@pytest.fixture
def roomy(tmp_path: Path, log: Log) -> Iterator[WitnessServer]:
    """A witness with room for 32 connections, 8 per client, a request deadline of 2 s."""
    key = load_key(tmp_path / "witness", "witness.sec.example")
    witness = Witness(
        key=key, store=WitnessStore(tmp_path / "witness"), logs={ORIGIN: [log.verifier]}
    )
    server = WitnessServer(
        ("127.0.0.1", 0), witness, max_connections=32, per_client=8, deadline_s=2.0
    )
    serve_in_thread(server)
    yield server
    server.shutdown()
    server.server_close()


def silent(server: WitnessServer, source: str, count: int) -> list[socket.socket]:
    """`count` connections from the loopback address `source` that never send a byte."""
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind((source, 0))
        sock.connect(server.server_address)
        socks.append(sock)
    return socks


def honest(server: WitnessServer, source: str, data: bytes) -> bytes:
    """One add-checkpoint request from `source`, sent at once; the answer's status line."""
    with socket.socket() as sock:
        sock.bind((source, 0))
        sock.settimeout(2)
        sock.connect(server.server_address)
        head = f"POST /add-checkpoint HTTP/1.1\r\nHost: w\r\nContent-Length: {len(data)}\r\n\r\n"
        sock.sendall(head.encode() + data)
        return sock.recv(4096).split(b"\r\n")[0]


def settle(server: WitnessServer, expected: dict[str, int]) -> None:
    deadline = time.monotonic() + 2
    while server.open_connections() != expected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.open_connections() == expected


def test_silent_connections_from_one_client_never_keep_others_out(
    roomy: WitnessServer, log: Log
) -> None:
    """Red team 5: 64 silent connections used to take every slot of the witness."""
    attacker = silent(roomy, "127.0.0.2", 80)
    try:
        settle(roomy, {"127.0.0.2": 8})  # its own oldest shed as it opened more
        started = time.monotonic()
        assert honest(roomy, "127.0.0.1", body(0, [], log.note(leaves(2)))) == b"HTTP/1.1 200 OK"
        assert time.monotonic() - started < 1
        # the same address as the attacker: its oldest idle connection makes room
        assert honest(roomy, "127.0.0.2", b"old 0") == b"HTTP/1.1 400 Bad Request"
        attacker += silent(roomy, "127.0.0.1", 64)  # and one client on the honest address
        assert honest(roomy, "127.0.0.1", b"old 0") == b"HTTP/1.1 400 Bad Request"
    finally:
        for sock in attacker:
            sock.close()


def test_when_full_the_client_holding_the_most_is_shed(roomy: WitnessServer) -> None:
    socks = []
    try:
        for index, count in enumerate([8, 8, 8, 7, 1]):
            socks += silent(roomy, f"127.0.0.{index + 3}", count)
        settle(roomy, {"127.0.0.3": 8, "127.0.0.4": 8, "127.0.0.5": 8, "127.0.0.6": 7,
                       "127.0.0.7": 1})  # fmt: skip
        assert honest(roomy, "127.0.0.8", b"old 0") == b"HTTP/1.1 400 Bad Request"
        socks[0].settimeout(0.5)  # well before the deadline
        assert socks[0].recv(10) == b""  # the oldest of one of the busiest clients went
        assert roomy.open_connections()["127.0.0.7"] == 1
        # silent connections are cut at the deadline: nothing stays open
        settle_at = time.monotonic() + 4
        while roomy.open_connections() and time.monotonic() < settle_at:
            time.sleep(0.1)
        assert roomy.open_connections() == {}
    finally:
        for sock in socks:
            sock.close()


def test_key_folder_rules(tmp_path: Path) -> None:
    folder = tmp_path / "w"
    with pytest.raises(WitnessSetupError, match="give --name"):
        load_key(folder)
    key = load_key(folder, "w.example")
    assert (folder / "witness-key.pem").stat().st_mode & 0o777 == 0o600
    assert folder.stat().st_mode & 0o777 == 0o700
    assert load_key(folder).public == key.public
    with pytest.raises(WitnessSetupError, match="named 'w.example'"):
        load_key(folder, "other")
    factory_folder = tmp_path / "data"
    factory_folder.mkdir()
    (factory_folder / "factory.db").touch()
    with pytest.raises(WitnessSetupError, match="factory's data folder"):
        load_key(factory_folder, "w")


def test_witness_serve_command(tmp_path: Path, log: Log) -> None:
    folder = tmp_path / "w"
    command = [str(Path(sys.executable).parent / "codefactory"), "witness", "serve"]
    with subprocess.Popen(
        [*command, "--data-dir", str(folder), "--name", "w.example", "--port", "0",
         "--log", f"{ORIGIN}={log.verifier.encoded()}"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    ) as process:  # fmt: skip
        try:
            assert process.stdout is not None
            key = process.stdout.readline().strip().removeprefix("witness ")
            url = process.stdout.readline().split()[-1].removesuffix("/add-checkpoint")
            answer = post(url, body(0, [], log.note(leaves(1))))
            assert answer.status_code == 200
        finally:
            process.terminate()
            process.wait(5)
    raw = base64.b64decode(key.split("+", 2)[2])
    assert key.startswith("w.example+") and raw[0] == 4
    independent_verify(log.note(leaves(1)), answer.text.strip(), "w.example", raw[1:])
    runner = CliRunner()
    printed = runner.invoke(app, ["witness", "key", "--data-dir", str(folder)])
    assert (printed.exit_code, printed.output.strip()) == (0, key)
    bad = runner.invoke(app, ["witness", "serve", "--data-dir", str(folder), "--log", "x=nope"])
    assert bad.exit_code == 1 and "--log x" in bad.output


def test_witness_key_in_a_pkcs11_token(
    tmp_path: Path, log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.softhsm_helpers import softhsm_token

    settings = softhsm_token(tmp_path / "hsm", monkeypatch)
    folder = tmp_path / "w"
    key = token_key(folder, "w.hsm.example", settings, "witness")
    assert not (folder / "witness-key.pem").exists()
    assert token_key(folder, None, settings, "witness").public == key.public  # found again
    witness = Witness(key=key, store=WitnessStore(folder), logs={ORIGIN: [log.verifier]})
    note = log.note(leaves(4))
    answer = witness.add_checkpoint(body(0, [], note))
    assert answer.status == 200
    independent_verify(note, answer.body.decode().strip(), key.name, key.public.public_key)
    with pytest.raises(WitnessSetupError, match="in a PKCS#11 token"):
        load_key(folder)
    with pytest.raises(WitnessSetupError, match="another label"):
        token_key(folder, None, settings, "other")
    load_key(tmp_path / "file", "w.file.example")
    with pytest.raises(WitnessSetupError, match="has a key file"):
        token_key(tmp_path / "file", None, settings, "witness")


def test_concurrent_requests_from_the_same_state_cosign_one(witness_url: str, log: Log) -> None:
    from concurrent.futures import ThreadPoolExecutor

    notes = [log.note(leaves(size)) for size in (3, 4)]  # two: the fixture's connection cap
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda n: post(witness_url, body(0, [], n)), notes))
    assert sorted(a.status_code for a in answers) == [200, 409]
    cosigned = 3 if answers[0].status_code == 200 else 4
    assert [a.text for a in answers if a.status_code == 409] == [f"{cosigned}\n"]
