"""Checkpoints in the C2SP tlog-checkpoint format (c2sp.org/tlog-checkpoint), as signed notes.

The body is three lines: the log's origin, the tree size in decimal, the root hash in
standard base64. A checkpoint saved outside the factory is what `audit verify --checkpoint`
later proves the log still extends; a log never signs two inconsistent checkpoints.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from codefactory.audit.errors import CheckpointInvalid
from codefactory.audit.merkle import HASH_SIZE
from codefactory.audit.note import NoteSigner, NoteVerifier, open_note, sign_note, split_note

_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """A tree head: which log, how many leaves, their root."""

    origin: str
    size: int
    root: bytes

    def body(self) -> str:
        """The checkpoint's note text (c2sp.org/tlog-checkpoint §Note text)."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    def sign(self, signer: NoteSigner) -> str:
        """The signed note; its key name is the origin, as the spec recommends."""
        return sign_note(self.body(), self.origin, signer)

    def as_dict(self) -> dict[str, object]:
        return {"origin": self.origin, "size": self.size, "root_hash": self.root.hex()}


def parse_body(text: str) -> Checkpoint:
    """The checkpoint in note text; extension lines after the third are allowed and ignored."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise CheckpointInvalid("malformed", "a checkpoint has origin, size and root lines")
    origin, size, root = lines[0], lines[1], lines[2]
    if not origin:
        raise CheckpointInvalid("malformed", "the checkpoint's origin line is empty")
    if not _SIZE.fullmatch(size):
        raise CheckpointInvalid("malformed", f"tree size {size[:30]!r} is not a decimal")
    try:
        root_hash = base64.b64decode(root, validate=True)
    except binascii.Error:
        raise CheckpointInvalid("malformed", "the root hash is not base64") from None
    if len(root_hash) != HASH_SIZE:
        raise CheckpointInvalid("malformed", f"the root hash is {len(root_hash)} bytes, not 32")
    return Checkpoint(origin=origin, size=int(size), root=root_hash)


def open_checkpoint(
    note: str, *, origin: str, verifiers: Sequence[NoteVerifier]
) -> tuple[Checkpoint, NoteVerifier]:
    """A signed checkpoint of the log `origin`, verified; CheckpointInvalid says what is wrong.

    The origin is compared before any signature, so a checkpoint of another log is named
    as such rather than as a bad signature.
    """
    text, _ = split_note(note)
    checkpoint = parse_body(text)
    if checkpoint.origin != origin:
        raise CheckpointInvalid(
            "foreign-origin",
            f"the checkpoint is from another log: origin {checkpoint.origin!r}, "
            f"this log is {origin!r}",
        )
    _, verifier = open_note(note, [v for v in verifiers if v.name == origin])
    return checkpoint, verifier
