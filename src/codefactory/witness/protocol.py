"""The `add-checkpoint` call of c2sp.org/tlog-witness, as a pure decision over the store.

Request body (UTF-8): `old <size>`, up to 63 lines of base64 consistency-proof hashes (none
when the old size is 0), an empty line, then the signed checkpoint (c2sp.org/tlog-checkpoint).

Answers, checked in this order:
- 400 malformed body, proof lines or checkpoint, or an old size larger than the checkpoint's;
- 404 a checkpoint of a log (origin) the witness was not told about;
- 403 no signature on it by the log's key verifies;
- 409 (`text/x.tlog.size`, body `<size>\n`) the old size is not the size the witness last
  cosigned for that log, or it is but the sizes are equal and the roots differ;
- 422 the consistency proof does not verify from the cosigned root to the new one;
- 200 the witness stores the checkpoint and answers its cosignature line
  (c2sp.org/tlog-cosignature);
- 503 its key cannot sign (an HSM down): nothing is stored.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from codefactory.audit.checkpoint import Checkpoint, parse_body
from codefactory.audit.cosignature import cosign
from codefactory.audit.errors import CheckpointInvalid, ProofInvalid
from codefactory.audit.merkle import EMPTY_ROOT, HASH_SIZE, verify_consistency
from codefactory.audit.note import NoteVerifier, open_note, split_note
from codefactory.identity.errors import SignerUnavailable
from codefactory.witness.keys import WitnessKey
from codefactory.witness.store import WitnessStore

log = logging.getLogger(__name__)
MAX_PROOF_LINES = 63
MAX_BODY_BYTES = 16 * 1024
SIZE_CONTENT_TYPE = "text/x.tlog.size"
_OLD = re.compile(r"old (0|[1-9][0-9]{0,18})")


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, content type, body."""

    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


def _text(status: int, message: str) -> Answer:
    return Answer(status, (message + "\n").encode())


class _Refused(Exception):
    def __init__(self, answer: Answer) -> None:
        super().__init__(answer.body.decode())
        self.answer = answer


@dataclass(frozen=True)
class _Request:
    old: int
    proof: list[bytes]
    note: str
    text: str
    """The checkpoint's note text (with any extension lines): what the cosignature covers."""
    checkpoint: Checkpoint


class Witness:
    """Cosigns checkpoints of the configured logs that extend what it cosigned before.

    `logs` maps each log's origin to the note verifier keys that may sign its checkpoints;
    `clock` gives unix seconds (the cosignature's time).
    """

    def __init__(
        self,
        *,
        key: WitnessKey,
        store: WitnessStore,
        logs: Mapping[str, Sequence[NoteVerifier]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.store = store
        self.logs = {origin: list(verifiers) for origin, verifiers in logs.items()}
        self.clock = clock

    def add_checkpoint(self, body: bytes) -> Answer:
        """Answer one `add-checkpoint` request body (already read, at most MAX_BODY_BYTES)."""
        try:
            request = _parse(body)
            self._authenticate(request)
            return self._cosign(request)
        except _Refused as refused:
            return refused.answer
        except SignerUnavailable as error:  # the store rolled back: nothing was recorded
            log.error("witness: cannot sign: %s", error)
            return _text(503, "the witness cannot sign now")

    def _authenticate(self, request: _Request) -> None:
        verifiers = self.logs.get(request.checkpoint.origin)
        if verifiers is None:
            raise _Refused(_text(404, f"unknown log {request.checkpoint.origin[:100]!r}"))
        try:
            open_note(request.note, verifiers)
        except CheckpointInvalid as error:
            raise _Refused(_text(403, f"no trusted signature of the log: {error}")) from None
        if request.old > request.checkpoint.size:
            raise _Refused(_text(400, "the old size is larger than the checkpoint's size"))

    def _cosign(self, request: _Request) -> Answer:
        checkpoint = request.checkpoint
        with self.store.locked() as tx:
            latest = tx.latest(checkpoint.origin)
            if request.old != latest.size:
                return Answer(409, f"{latest.size}\n".encode(), SIZE_CONTENT_TYPE)
            if request.old == checkpoint.size:
                expected = latest.root if latest.root is not None else EMPTY_ROOT
                if checkpoint.root != expected:
                    return Answer(409, f"{latest.size}\n".encode(), SIZE_CONTENT_TYPE)
                if request.proof:
                    return _text(422, "a checkpoint of the same size needs no proof")
            elif request.old > 0:
                assert latest.root is not None
                try:
                    verify_consistency(
                        request.old, checkpoint.size, request.proof, latest.root, checkpoint.root
                    )
                except ProofInvalid as error:
                    return _text(422, f"the consistency proof does not verify: {error}")
            tx.save(checkpoint.origin, checkpoint.size, checkpoint.root, request.note)
            line = cosign(
                request.text,
                name=self.key.name,
                public_key=self.key.public.public_key,
                sign=self.key.sign,
                timestamp=int(self.clock()),
            )
        return Answer(200, line.encode())


def _parse(body: bytes) -> _Request:
    def bad(message: str) -> _Refused:
        return _Refused(_text(400, message))

    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise bad("the body is not UTF-8") from None
    head, separator, note = text.partition("\n\n")
    if not separator:
        raise bad("no empty line between the proof and the checkpoint")
    lines = head.split("\n")
    match = _OLD.fullmatch(lines[0])
    if match is None:
        raise bad("the first line is `old <size>` with a decimal size")
    old = int(match.group(1))
    proof_lines = lines[1:]
    if len(proof_lines) > MAX_PROOF_LINES:
        raise bad(f"at most {MAX_PROOF_LINES} consistency proof lines")
    if old == 0 and proof_lines:
        raise bad("no consistency proof goes with old size 0")
    proof = [_hash(line) for line in proof_lines]
    try:
        note_text, _ = split_note(note)
        checkpoint = parse_body(note_text)
    except CheckpointInvalid as error:
        raise bad(f"the checkpoint is malformed: {error}") from None
    return _Request(old=old, proof=proof, note=note, text=note_text, checkpoint=checkpoint)


def _hash(line: str) -> bytes:
    try:
        raw = base64.b64decode(line, validate=True)
    except binascii.Error:
        raise _Refused(_text(400, "a proof line is not base64")) from None
    if len(raw) != HASH_SIZE or base64.b64encode(raw).decode() != line:
        raise _Refused(_text(400, "a proof line is the canonical base64 of a 32-byte hash"))
    return raw
