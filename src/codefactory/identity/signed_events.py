"""Authority read back from the audit log counts only with its signed statement, re-checked.

The audit log is append-only and witnessed, but a witness proves only that an event was
appended, not that anyone was entitled to append it: whoever can write the data folder can
append an event that looks like an approval. So an event that grants authority (a policy or
registry approval, an agent's reactivation) carries the governance statement and the SSH
signature that authorized it (`statement`, `signature` in its data), and whoever reads it back
checks them again against the directory with `reverify`: the signer is a directory person
with the role, the key is theirs, the statement is over the expected action and target. The
statement's age does not matter at read time (it was fresh when it was accepted); its `at`
orders the acts, and a statement digest seen before is a replay.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from codefactory.identity.directory import Role
from codefactory.identity.errors import IdentityError
from codefactory.identity.statements import (
    GOVERNANCE_TYPE,
    StatementRefused,
    StatementVerifier,
    VerifiedStatement,
)

STATEMENT_FIELD = "statement"
SIGNATURE_FIELD = "signature"
CACHE_SIZE = 512
"""Checked statements remembered per process (two ssh-keygen runs each otherwise); the
directory's people, roles and keys are part of the key, so a changed directory re-checks."""
_checked: dict[tuple[object, ...], VerifiedStatement | StatementRefused] = {}


def signed_fields(verified: VerifiedStatement, prefix: str = "") -> dict[str, str]:
    """What an event keeps so the act can be checked again: `{prefix}statement` (the UTF-8
    text as signed), `{prefix}signature` (the armored SSH signature) and
    `{prefix}statement_digest`."""
    return {
        f"{prefix}{STATEMENT_FIELD}": verified.body.decode("utf-8"),
        f"{prefix}{SIGNATURE_FIELD}": verified.signature,
        f"{prefix}statement_digest": verified.digest,
    }


def reverify(
    verifier: StatementVerifier,
    data: Mapping[str, Any],
    *,
    role: Role,
    expect: Mapping[str, str],
    prefix: str = "",
) -> VerifiedStatement:
    """The governance statement kept in an event's `data` (under `prefix`), checked again as
    `StatementVerifier.verify` does but for age and replay; `StatementRefused` with the first
    reason it does not count (missing, not text, unknown key, wrong role or subject)."""
    body = data.get(f"{prefix}{STATEMENT_FIELD}")
    signature = data.get(f"{prefix}{SIGNATURE_FIELD}")
    if not isinstance(body, str) or not isinstance(signature, str) or not body or not signature:
        raise StatementRefused(f"the event carries no signed {prefix}statement")
    raw = body.encode("utf-8")
    try:
        said = json.loads(raw)
    except ValueError:
        raise StatementRefused(f"the event's {prefix}statement is not JSON") from None
    person = said.get("person") if isinstance(said, dict) else None
    if not isinstance(person, str):
        raise StatementRefused(f"the event's {prefix}statement names no person")
    people = tuple((p.id, tuple(sorted(p.roles)), p.ssh_keys) for p in verifier.directory.people())
    cache_key = (raw, signature, role, tuple(sorted(expect.items())), people)
    found = _checked.get(cache_key)
    if found is None:
        found = _check(verifier, raw, signature, person=person, role=role, expect=expect)
        if len(_checked) >= CACHE_SIZE:
            _checked.clear()
        _checked[cache_key] = found
    if isinstance(found, StatementRefused):
        raise StatementRefused(found.reason, digest=found.digest, fingerprint=found.fingerprint)
    return found


def _check(
    verifier: StatementVerifier,
    raw: bytes,
    signature: str,
    *,
    person: str,
    role: Role,
    expect: Mapping[str, str],
) -> VerifiedStatement | StatementRefused:
    try:
        return verifier.verify(
            raw,
            signature,
            statement_type=GOVERNANCE_TYPE,
            claimed=person,
            role=role,
            expect=expect,
            used=lambda _digest: False,  # the caller orders acts and refuses replays
            fresh=False,
        )
    except StatementRefused as err:
        return err
    except IdentityError as err:  # a directory that cannot answer: the act does not count
        return StatementRefused(str(err))


def statement_at(verified: VerifiedStatement) -> datetime:
    """The statement's `at` (RFC 3339 UTC); `StatementRefused` when it is not a time."""
    at = verified.fields.get("at")
    try:
        assert isinstance(at, str) and at.endswith("Z")
        return datetime.fromisoformat(at).astimezone(UTC)
    except (AssertionError, ValueError):
        raise StatementRefused(f"`at` {at!r} is not an RFC 3339 UTC time") from None
