"""The factory's side of c2sp.org/tlog-witness: post one checkpoint to one witness.

The answer is read with a size cap and a timeout; whatever goes wrong (unreachable, slow, a
refusal, a malformed answer) comes back as a `WitnessRefused`, never an exception, so a
witness can never block a run.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

MAX_ANSWER_BYTES = 64 * 1024
_SIZE = re.compile(r"(0|[1-9][0-9]{0,18})\n")


@dataclass(frozen=True)
class WitnessCosigned:
    """200: the witness's signature lines (to be verified by the caller)."""

    lines: tuple[str, ...]


@dataclass(frozen=True)
class WitnessConflict:
    """409 with `text/x.tlog.size`: the size the witness last cosigned for this log."""

    size: int


@dataclass(frozen=True)
class WitnessRefused:
    """Anything else: `kind` is unreachable, timeout, refused or malformed."""

    kind: str
    reason: str
    status: int = 0


WitnessAnswer = WitnessCosigned | WitnessConflict | WitnessRefused


def request_body(old: int, proof: Sequence[bytes], note: str) -> bytes:
    """`old N`, the proof's hashes in base64 one a line, an empty line, the signed note."""
    lines = [f"old {old}", *(base64.b64encode(node).decode() for node in proof)]
    return ("\n".join(lines) + "\n\n" + note).encode("utf-8")


def add_checkpoint(
    url: str, *, old: int, proof: Sequence[bytes], note: str, timeout_s: float
) -> WitnessAnswer:
    """POST `<url>/add-checkpoint`; the outcome as data."""
    target = url.rstrip("/") + "/add-checkpoint"
    try:
        with (
            httpx.Client(timeout=timeout_s, follow_redirects=False, trust_env=False) as client,
            client.stream(
                "POST",
                target,
                content=request_body(old, proof, note),
                headers={"Content-Type": "text/plain; charset=utf-8"},
            ) as response,
        ):
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    return WitnessRefused(
                        "malformed", "the answer is too large", response.status_code
                    )
            return _answer(response.status_code, response.headers.get("content-type", ""), body)
    except httpx.TimeoutException as error:
        return WitnessRefused("timeout", f"no answer within {timeout_s}s ({type(error).__name__})")
    except httpx.HTTPError as error:
        return WitnessRefused("unreachable", f"{type(error).__name__}: {error}")


def _answer(status: int, content_type: str, body: bytes) -> WitnessAnswer:
    text = body.decode("utf-8", errors="replace")
    if status == 200:
        lines = tuple(line for line in text.split("\n") if line)
        if not lines:
            return WitnessRefused("malformed", "200 without a cosignature line", status)
        return WitnessCosigned(lines)
    if status == 409 and content_type.split(";")[0].strip() == "text/x.tlog.size":
        match = _SIZE.fullmatch(text)
        if match is None:
            return WitnessRefused("malformed", f"409 with a malformed size {text[:40]!r}", status)
        return WitnessConflict(int(match.group(1)))
    kind = "inconsistent" if status in (409, 422) else "refused"
    return WitnessRefused(kind, f"HTTP {status}: {text.strip()[:300]}", status)
