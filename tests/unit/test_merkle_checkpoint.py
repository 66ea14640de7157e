"""C2SP signed notes and tlog checkpoints, against the Go reference implementation's vector."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from codefactory.audit.checkpoint import Checkpoint, open_checkpoint, parse_body
from codefactory.audit.errors import CheckpointInvalid
from codefactory.audit.note import NoteVerifier, key_id, open_note, sign_note, split_note

# golang.org/x/mod/sumdb/note's documented example (note.go, note_test.go): Ed25519 signing is
# deterministic (RFC 8032), so our signer must reproduce the published note byte for byte.
GO_SIGNER_KEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2"
    "pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def go_key() -> Ed25519PrivateKey:
    seed = base64.b64decode(GO_SIGNER_KEY.split("+", 4)[4])[1:]
    return Ed25519PrivateKey.from_private_bytes(seed)


def signer(key: Ed25519PrivateKey):  # type: ignore[no-untyped-def]
    return lambda message: (key.public_key().public_bytes_raw(), key.sign(message))


def test_our_notes_match_the_go_reference_byte_for_byte() -> None:
    key = go_key()
    assert sign_note(GO_TEXT, "PeterNeumann", signer(key)) == GO_NOTE
    verifier = NoteVerifier(name="PeterNeumann", public_key=key.public_key().public_bytes_raw())
    assert verifier.encoded() == GO_VERIFIER_KEY
    assert key_id("PeterNeumann", verifier.public_key).hex() == "c74f20a3"
    assert open_note(GO_NOTE, [verifier]) == (GO_TEXT, verifier)


def test_a_changed_text_or_an_unknown_key_is_named() -> None:
    key = go_key()
    verifier = NoteVerifier(name="PeterNeumann", public_key=key.public_key().public_bytes_raw())
    with pytest.raises(CheckpointInvalid, match="does not verify") as bad:
        open_note(GO_NOTE.replace("cryptography", "cryptographY"), [verifier])
    assert bad.value.kind == "bad-signature"
    other = NoteVerifier(name="PeterNeumann", public_key=bytes(32))
    with pytest.raises(CheckpointInvalid, match="no key of this log") as unknown:
        open_note(GO_NOTE, [other])
    assert unknown.value.kind == "unknown-key"


@pytest.mark.parametrize(
    "note",
    [
        "no signature block\n",
        GO_TEXT + "\n",
        GO_TEXT + "\nnot a signature\n",
        GO_TEXT + "\n\u2014 PeterNeumann !!!\n",
        GO_TEXT + "\n\u2014 PeterNeumann AAAA\n",
        GO_TEXT + "\n\u2014 PeterNeumann x08go/ZJ",
    ],
)
def test_malformed_notes_are_refused(note: str) -> None:
    with pytest.raises(CheckpointInvalid) as error:
        split_note(note)
    assert error.value.kind == "malformed"


@pytest.mark.parametrize(("text", "name"), [("no newline", "k"), ("a\n\nb\n", "k"), ("a\n", "a b")])
def test_what_cannot_be_signed(text: str, name: str) -> None:
    with pytest.raises(ValueError):
        sign_note(text, name, signer(go_key()))


# --- checkpoints ------------------------------------------------------------------------


def test_a_checkpoint_body_is_origin_size_and_base64_root() -> None:
    checkpoint = Checkpoint(origin="example.com/log", size=8, root=bytes(range(32)))
    assert checkpoint.body() == (
        "example.com/log\n8\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
    )
    assert parse_body(checkpoint.body()) == checkpoint
    assert parse_body(checkpoint.body() + "extension line\n") == checkpoint
    assert checkpoint.as_dict()["root_hash"] == bytes(range(32)).hex()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("log\n8\n", "origin, size and root"),
        ("log\n8\nAAAA", "origin, size and root"),
        ("\n8\nAAAA\n", "origin line is empty"),
        ("log\n08\nAAAA\n", "not a decimal"),
        ("log\n-1\nAAAA\n", "not a decimal"),
        ("log\n8\n!!!!\n", "not base64"),
        ("log\n8\nAAAA\n", "3 bytes, not 32"),
    ],
)
def test_malformed_checkpoints_are_named(text: str, message: str) -> None:
    with pytest.raises(CheckpointInvalid, match=message):
        parse_body(text)


def test_opening_a_checkpoint_checks_the_origin_first() -> None:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes_raw()
    note = Checkpoint(origin="log.a", size=3, root=bytes(32)).sign(signer(key))
    verifiers = [NoteVerifier(name="log.a", public_key=public)]
    checkpoint, verifier = open_checkpoint(note, origin="log.a", verifiers=verifiers)
    assert (checkpoint.size, verifier.public_key) == (3, public)
    with pytest.raises(CheckpointInvalid, match="from another log: origin 'log.a'") as foreign:
        open_checkpoint(note, origin="log.b", verifiers=verifiers)
    assert foreign.value.kind == "foreign-origin"
