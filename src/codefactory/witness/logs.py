"""The logs a witness is told to witness: `ORIGIN=VERIFIER_KEY` pairs."""

from __future__ import annotations

from collections.abc import Iterable

from codefactory.audit.note import NoteVerifier, parse_verifier


def parse_logs(pairs: Iterable[str]) -> dict[str, list[NoteVerifier]]:
    """Each `ORIGIN=name+keyid+base64(0x01||key)` (the factory's keys are named after its
    origin, as C2SP recommends; other logs' need not be). ValueError names the bad pair."""
    logs: dict[str, list[NoteVerifier]] = {}
    for pair in pairs:
        origin, separator, key = pair.partition("=")
        if not separator or not origin:
            raise ValueError(f"--log takes ORIGIN=VERIFIER_KEY, not {pair[:80]!r}")
        try:
            verifier = parse_verifier(key)
        except ValueError as error:
            raise ValueError(f"--log {origin}: {error}") from None
        logs.setdefault(origin, []).append(verifier)
    if not logs:
        raise ValueError("give at least one --log ORIGIN=VERIFIER_KEY")
    return logs
