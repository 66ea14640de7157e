"""Signed statements: what a person says (a verdict, a governance act), as RFC 8785 canonical
JSON, signed with their own SSH key (`ssh_signatures`), checked against the directory.

A review statement (`_type` `codefactory.review.v1`, namespace `codefactory-review`):

    {"_type": "codefactory.review.v1", "at": "2026-11-29T23:40:00.000000Z", "comment": "",
     "commit": "<sha1>", "package_digest": "sha256:<hex>", "reviewer": "jordan.lee",
     "run_id": "r-…", "verdict": "approve"}

A governance statement (`codefactory.governance.v1`, namespace `codefactory-governance`):
`action`, `target`, `reason`, `person`, `at`, and what the action needs (`digest`).

A sign-off statement (`codefactory.sign-off.v1`, namespace `codefactory-sign-off`): a QA or
UAT person's verdict on an approved run's change, over the same commit and package digest:

    {"_type": "codefactory.sign-off.v1", "at": "…Z", "commit": "<sha1>",
     "package_digest": "sha256:<hex>", "reason": "", "run_id": "r-…", "signer": "quinn.qa",
     "stage": "qa", "verdict": "accept"}

`StatementVerifier.verify` fails closed (`StatementRefused`, one precise reason) on: text that
is not canonical JSON of the expected type; a claimed person who is not a directory person
(anything non-human: `agent:`, `service:`); a statement by someone else; a missing role; a
signature that does not verify, by an unknown key or another person's key; a statement over
another subject; an `at` older than the allowed age or in the future; a digest used before.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from codefactory.audit.canonical import canonical_json
from codefactory.identity import ssh_signatures
from codefactory.identity.directory import Directory, Person, Role, person_id_of
from codefactory.identity.errors import IdentityError, IdentityRefused
from codefactory.identity.names import check_identity

REVIEW_TYPE = "codefactory.review.v1"
GOVERNANCE_TYPE = "codefactory.governance.v1"
SIGN_OFF_TYPE = "codefactory.sign-off.v1"
SIGN_OFF_NAMESPACE = "codefactory-sign-off"
"""`ssh-keygen -Y sign -n codefactory-sign-off`: a sign-off never verifies as a review."""
NAMESPACES = {
    REVIEW_TYPE: ssh_signatures.REVIEW_NAMESPACE,
    GOVERNANCE_TYPE: ssh_signatures.GOVERNANCE_NAMESPACE,
    SIGN_OFF_TYPE: SIGN_OFF_NAMESPACE,
}
PERSON_FIELD = {REVIEW_TYPE: "reviewer", GOVERNANCE_TYPE: "person", SIGN_OFF_TYPE: "signer"}
MAX_STATEMENT_BYTES = 16_384
"""A statement is a few hundred bytes; longer text is refused before anything parses it."""
VERDICTS = ("approve", "reject")
SIGN_OFF_VERDICTS = ("accept", "reject")
SIGN_OFF_STAGES = ("qa", "uat")


class StatementRefused(IdentityError):
    """A signed statement that does not count; `reason` says why in one line."""

    def __init__(self, reason: str, *, digest: str = "", fingerprint: str = "") -> None:
        super().__init__(f"statement refused: {reason}")
        self.reason = reason
        self.digest = digest
        self.fingerprint = fingerprint


def rfc3339(at: datetime) -> str:
    """`at` as RFC 3339 UTC to the microsecond: `2026-11-29T23:40:00.123456Z`. Two acts by
    one person on one target in the same second are two statements, not a replay, and order
    by their time."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def statement_digest(body: bytes) -> str:
    """`sha256:<hex>` of the statement bytes as signed."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def review_statement(
    *,
    run_id: str,
    commit: str,
    package_digest: str,
    verdict: str,
    reviewer: str,
    comment: str = "",
    at: datetime | None = None,
) -> bytes:
    """The canonical bytes a reviewer signs; `reviewer` is normalised to a person id
    (`IdentityRefused` for text with control, format or zero-width characters)."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}, not {verdict!r}")
    return canonical_json(
        {
            "_type": REVIEW_TYPE,
            "run_id": run_id,
            "commit": commit,
            "package_digest": package_digest,
            "verdict": verdict,
            "comment": comment,
            "reviewer": person_id_of(reviewer),
            "at": rfc3339(at or datetime.now(UTC)),
        }
    )


def sign_off_statement(
    *,
    run_id: str,
    commit: str,
    package_digest: str,
    stage: str,
    verdict: str,
    signer: str,
    reason: str = "",
    at: datetime | None = None,
) -> bytes:
    """The canonical bytes a QA (`stage` `qa`) or UAT (`uat`) person signs to accept or
    reject the change; `signer` is normalised to a person id (`IdentityRefused` for text with
    control, format or zero-width characters); `ValueError` for another stage or verdict."""
    if stage not in SIGN_OFF_STAGES:
        raise ValueError(f"stage must be one of {SIGN_OFF_STAGES}, not {stage!r}")
    if verdict not in SIGN_OFF_VERDICTS:
        raise ValueError(f"verdict must be one of {SIGN_OFF_VERDICTS}, not {verdict!r}")
    return canonical_json(
        {
            "_type": SIGN_OFF_TYPE,
            "run_id": run_id,
            "commit": commit,
            "package_digest": package_digest,
            "stage": stage,
            "verdict": verdict,
            "reason": reason,
            "signer": person_id_of(signer),
            "at": rfc3339(at or datetime.now(UTC)),
        }
    )


def governance_statement(
    *,
    action: str,
    target: str,
    person: str,
    reason: str = "",
    at: datetime | None = None,
    **extra: str,
) -> bytes:
    """The canonical bytes a person signs to do a governance `action` on `target` (an agent
    id, a token's jti, a policy digest); `extra` adds fields the action binds (`digest`)."""
    return canonical_json(
        {
            "_type": GOVERNANCE_TYPE,
            "action": action,
            "target": target,
            "reason": reason,
            "person": person_id_of(person),
            "at": rfc3339(at or datetime.now(UTC)),
            **extra,
        }
    )


@dataclass(frozen=True, kw_only=True)
class VerifiedStatement:
    """A statement that counts: who said it, with which key, what it says."""

    person: Person
    fields: Mapping[str, Any]
    body: bytes
    signature: str
    digest: str
    """`sha256:<hex>` of `body`."""
    fingerprint: str
    """The signing key's `SHA256:…` fingerprint."""
    allowed_signers_line: str
    """The allowed-signers line that verifies it: `ssh-keygen -Y verify` with this line alone
    (principal = `person.id`) checks the signature again."""

    @property
    def namespace(self) -> str:
        return NAMESPACES[str(self.fields["_type"])]


def refuse_non_human(claimed: str) -> str:
    """The person id a claimed name stands for; `StatementRefused` for a non-human actor
    (`agent:`, `service:`, any prefix but `user:`) or refused identity text."""
    try:
        check_identity(claimed, what="person")
    except IdentityRefused as err:
        raise StatementRefused(str(err)) from err
    if ":" in claimed and not claimed.startswith("user:"):
        raise StatementRefused(f"{claimed!r} is not a person: non-humans never approve or govern")
    return person_id_of(claimed)


class StatementVerifier:
    """Checks signed statements against the directory (see the module docstring)."""

    def __init__(
        self,
        directory: Directory,
        *,
        max_age: timedelta = timedelta(minutes=10),
        future_skew: timedelta = timedelta(minutes=1),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.directory = directory
        self.max_age = max_age
        self.future_skew = future_skew
        self.clock = clock

    def verify(
        self,
        body: bytes,
        signature: str,
        *,
        statement_type: str,
        claimed: str,
        role: Role,
        expect: Mapping[str, str],
        used: Callable[[str], bool],
        fresh: bool = True,
    ) -> VerifiedStatement:
        """The statement if it counts; `StatementRefused` with the first reason it does not.
        `claimed` is who the caller says signed; `expect` the fields it must bind; `used`
        says whether a digest was accepted before (replay); `fresh=False` for a standing
        decision kept in configuration (a waiver), whose age does not matter."""
        digest = statement_digest(body)
        fields = _parse(body, statement_type)
        person = self._person(claimed, fields, PERSON_FIELD[statement_type], role)
        fingerprint, line = self._signature(body, signature, person, NAMESPACES[statement_type])
        try:
            for key, value in expect.items():
                if fields.get(key) != value:
                    raise StatementRefused(
                        f"the statement is over {key} {fields.get(key)!r}, not {value!r}"
                    )
            if fresh:
                self._fresh(fields)
            if used(digest):
                raise StatementRefused("this statement was used already (replay)")
        except StatementRefused as err:
            raise StatementRefused(err.reason, digest=digest, fingerprint=fingerprint) from None
        return VerifiedStatement(
            person=person,
            fields=fields,
            body=body,
            signature=signature,
            digest=digest,
            fingerprint=fingerprint,
            allowed_signers_line=line,
        )

    def _person(self, claimed: str, fields: Mapping[str, Any], field: str, role: Role) -> Person:
        person_id = refuse_non_human(claimed)
        person = self.directory.person(person_id)
        if person is None:
            raise StatementRefused(f"no person {person_id!r} in the directory")
        said = fields.get(field)
        if not isinstance(said, str) or refuse_non_human(said) != person.id:
            raise StatementRefused(f"the statement's {field} is {said!r}, not {person.id!r}")
        if not person.has_role(role):
            raise StatementRefused(f"{person.id} does not hold the role {role.value!r}")
        return person

    def _signature(
        self, body: bytes, signature: str, person: Person, namespace: str
    ) -> tuple[str, str]:
        try:
            fingerprint = ssh_signatures.signing_key_fingerprint(body, signature, namespace)
        except ssh_signatures.SshSignatureError as err:
            raise StatementRefused(
                f"the signature does not verify over this statement: {err}"
            ) from err
        keys = _keys_by_fingerprint(self.directory)
        owners = keys.get(fingerprint, {})
        if person.id not in owners:
            whose = (
                f"a key of {', '.join(sorted(owners))}"
                if owners
                else "a key no person in the directory holds"
            )
            raise StatementRefused(
                f"signed with {fingerprint}, {whose}, not of {person.id}", fingerprint=fingerprint
            )
        lines = [
            ssh_signatures.allowed_signers_line(owner, key, namespace)
            for by_owner in keys.values()
            for owner, key in by_owner.items()
        ]
        try:
            ssh_signatures.verify(
                body,
                signature,
                allowed_signers=lines,
                principal=person.id,
                namespace=namespace,
            )
        except ssh_signatures.SshSignatureError as err:
            raise StatementRefused(str(err), fingerprint=fingerprint) from err
        line = ssh_signatures.allowed_signers_line(person.id, owners[person.id], namespace)
        return fingerprint, line

    def _fresh(self, fields: Mapping[str, Any]) -> None:
        at = fields.get("at")
        try:
            assert isinstance(at, str) and at.endswith("Z")
            when = datetime.fromisoformat(at)
        except (AssertionError, ValueError):
            raise StatementRefused(f"`at` {at!r} is not an RFC 3339 UTC time") from None
        now = self.clock()
        if when - now > self.future_skew:
            raise StatementRefused(f"`at` {at} is in the future")
        if now - when > self.max_age:
            minutes = int(self.max_age.total_seconds() // 60)
            raise StatementRefused(f"`at` {at} is older than {minutes} minutes: sign afresh")


def _keys_by_fingerprint(directory: Directory) -> dict[str, dict[str, str]]:
    """Every directory key by fingerprint: {fingerprint: {person id: key line}}."""
    keys: dict[str, dict[str, str]] = {}
    for person in directory.people():
        for key in person.ssh_keys:
            try:
                fingerprint = ssh_signatures.key_fingerprint(key)
            except ValueError as err:
                raise StatementRefused(
                    f"the directory holds an unreadable key of {person.id}: {err}"
                ) from err
            keys.setdefault(fingerprint, {})[person.id] = key
    return keys


def _parse(body: bytes, statement_type: str) -> dict[str, Any]:
    if len(body) > MAX_STATEMENT_BYTES:
        raise StatementRefused(f"the statement is longer than {MAX_STATEMENT_BYTES} bytes")
    try:
        fields = json.loads(body.decode("utf-8"))
        canonical = isinstance(fields, dict) and canonical_json(fields) == body
    except (UnicodeDecodeError, ValueError, TypeError, RecursionError):
        raise StatementRefused("the statement is not JSON") from None
    if not canonical:
        raise StatementRefused("the statement is not an RFC 8785 canonical JSON object")
    if fields.get("_type") != statement_type:
        raise StatementRefused(
            f"the statement's _type is {fields.get('_type')!r}, not {statement_type!r}"
        )
    return dict(fields)
