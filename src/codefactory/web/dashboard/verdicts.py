"""Verdicts from the run page: the statement to sign, and the signed verdict.

A verdict is the review desk's signed statement (`runs.review.ReviewDesk`): an approval or
rejection of a run in review (`statement_for`, `decide`), or a QA or UAT sign-off of a run on
the regulated track (`sign_off_statement`, `sign_off`). The page asks the desk for the exact
statement the signed-in person signs for the chosen verdict and text, shows it with the
`ssh-keygen -Y sign` command, and takes back the armored signature in a POST that the desk
checks. The signer is always the signed-in person, never a form field. The POST carries the
session's CSRF token (a random value kept in the signed session cookie, compared in
constant time).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from codefactory.domain import Run
from codefactory.identity.directory import Person
from codefactory.identity.errors import IdentityError
from codefactory.package.errors import PackageError
from codefactory.review.errors import (
    FactsRefused,
    ReviewError,
    SegregationViolation,
    VerdictRefused,
)
from codefactory.runs.review import ReviewDesk, ReviewNotOpen
from codefactory.runs.sign_offs import SignOffNotOpen
from codefactory.store.errors import RunNotFound, StoreError
from codefactory.web.dashboard.stages import REVIEW, Stage, stage_of

CSRF_KEY = "dashboard_csrf"
MAX_COMMENT = 2_000
MAX_SIGNATURE = 16_384
DESK_ERRORS = (ReviewError, StoreError, IdentityError, PackageError)
"""What `ReviewDesk.statement_for` and `decide` raise for a verdict that does not count."""


DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class FormInvalid(ValueError):
    """A verdict form that is not what the page sends (names the field and why)."""


class PackageChanged(ValueError):
    """The package digest the page showed is not the one the statement binds to, or not the
    run's package as it is now: what the person read is not what they would sign."""


def shown_digest(value: str) -> str:
    """The package digest the page showed (`sha256:<hex>`, posted back by its forms);
    `FormInvalid` when it is absent or not a digest."""
    if not DIGEST.fullmatch(value):
        raise FormInvalid(
            "the form carries no package digest (the package the page showed): "
            "read the run page again"
        )
    return value


def check_digest(shown: str, current: str, what: str) -> None:
    """`PackageChanged` unless `current` (the digest `what` binds to) is `shown`."""
    if not hmac.compare_digest(shown, current):
        raise PackageChanged(
            f"the package changed since the page showed it: you read {shown}, but {what} "
            f"{current or 'no verified package'}; read the run page again before you sign"
        )


def statement_digest(statement: bytes) -> str:
    """The `package_digest` a review or sign-off statement binds to ("" when none)."""
    try:
        fields = json.loads(statement)
    except ValueError:
        return ""
    value = fields.get("package_digest") if isinstance(fields, dict) else None
    return value if isinstance(value, str) else ""


def csrf_token(session: dict[str, Any]) -> str:
    """The session's CSRF token, made (256 random bits) on first use."""
    token = session.get(CSRF_KEY)
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        session[CSRF_KEY] = token
    return token


def csrf_valid(session: dict[str, Any], given: str) -> bool:
    """Whether `given` is this session's CSRF token (constant-time comparison)."""
    token = session.get(CSRF_KEY)
    return isinstance(token, str) and bool(given) and hmac.compare_digest(token, given)


def stage_for(run: Run) -> Stage:
    """The stage of `run`'s verdict: the one its state waits for; review otherwise (the
    desk then refuses it as not open)."""
    return stage_of(run.state.value) or REVIEW


def role_refusal(person: Person, stage: Stage) -> str:
    """Why `person` may not give `stage`'s verdict at all ("" when they hold its role)."""
    if person.has_role(stage.role):
        return ""
    return (
        f"{person.id} does not hold the role '{stage.role.value}' in the factory's directory, "
        f"so their {stage.task} would not count"
    )


@dataclass(frozen=True, kw_only=True)
class StatementToSign:
    """The statement for one verdict, as the page shows it."""

    verdict: str
    comment: str
    text: str
    """The statement as UTF-8 text (canonical JSON, no trailing newline)."""
    encoded: str
    """The exact bytes, base64: what the form posts back and the shell command decodes."""
    file_command: str
    sign_command: str


def verdict_of(stage: Stage, value: str) -> str:
    """One of `stage.verdicts`; `FormInvalid` for anything else."""
    if value not in stage.verdicts:
        allowed = " or ".join(stage.verdicts)
        raise FormInvalid(f"the verdict of a {stage.task} is {allowed}, not {value[:40]!r}")
    return value


def statement_to_sign(
    desk: ReviewDesk, run: Run, signer: Person, verdict: str, comment: str
) -> StatementToSign:
    """The desk's statement for `signer`'s `verdict` on `run` with `comment` (a review's
    comment, a sign-off's reason); raises the desk's errors (`DESK_ERRORS`) or
    `FormInvalid`."""
    stage = stage_for(run)
    if len(comment) > MAX_COMMENT:
        raise FormInvalid(f"the {stage.note} is longer than {MAX_COMMENT} characters")
    moves_on = verdict_of(stage, verdict) == stage.verdicts[0]
    if stage.sign_off:
        body = desk.sign_off_statement(
            run.id, stage=stage.sign_off, signer=signer.id, accept=moves_on, reason=comment
        )
    else:
        body = desk.statement_for(run.id, reviewer=signer.id, approve=moves_on, comment=comment)
    encoded = base64.b64encode(body).decode("ascii")
    return StatementToSign(
        verdict=verdict,
        comment=comment,
        text=body.decode("utf-8"),
        encoded=encoded,
        file_command=f"echo {encoded} | base64 -d > statement.json",
        sign_command=f"ssh-keygen -Y sign -f ~/.ssh/id_ed25519 -n {stage.namespace} statement.json",
    )


@dataclass(frozen=True, kw_only=True)
class SignedVerdict:
    """A posted verdict: whether it moves the run on (approve, accept), the statement's
    exact bytes and the armored SSH signature."""

    approve: bool
    statement: bytes
    signature: str


def signed_verdict(stage: Stage, form: dict[str, str]) -> SignedVerdict:
    """The verdict in a posted form (`verdict`, `statement` base64, `signature`) for
    `stage`; `FormInvalid` names what is wrong."""
    approve = verdict_of(stage, form.get("verdict", "")) == stage.verdicts[0]
    try:
        statement = base64.b64decode(form.get("statement", ""), validate=True)
    except (binascii.Error, ValueError) as err:
        raise FormInvalid("the statement field is not base64") from err
    signature = form.get("signature", "").replace("\r\n", "\n").strip()
    if not statement:
        raise FormInvalid("the statement is empty: ask for the statement to sign first")
    if not signature:
        raise FormInvalid("paste the armored signature (statement.json.sig)")
    if len(signature) > MAX_SIGNATURE:
        raise FormInvalid(f"the signature is longer than {MAX_SIGNATURE} characters")
    return SignedVerdict(approve=approve, statement=statement, signature=signature + "\n")


def status_of(err: Exception, *, refused: bool) -> int:
    """The HTTP status a refused verdict answers with: 403 for a person segregation of
    duties or their role keeps from reviewing (`refused`), 404 no run, 409 a run not (or no
    longer) in review, whose signed facts do not hold or whose package is not the one the
    page showed (`PackageChanged`), 422 a statement or signature that does not count."""
    if refused or isinstance(err, SegregationViolation):
        return 403
    if isinstance(err, RunNotFound):
        return 404
    if isinstance(err, ReviewNotOpen | SignOffNotOpen | FactsRefused | PackageError):
        return 409
    if isinstance(err, PackageChanged):
        return 409
    if isinstance(err, VerdictRefused | FormInvalid | IdentityError):
        return 422
    return 400


def record(desk: ReviewDesk, run: Run, signer: Person, verdict: SignedVerdict) -> Run:
    """Hand `verdict` to the desk for `run`'s stage: `decide` for a review, `sign_off` for
    QA and UAT; raises the desk's errors (`DESK_ERRORS`), each refusal audited by the desk."""
    stage = stage_for(run)
    if stage.sign_off:
        return desk.sign_off(
            run.id, stage=stage.sign_off, statement=verdict.statement,
            signature=verdict.signature, signer=signer.id, accept=verdict.approve,
        )  # fmt: skip
    return desk.decide(
        run.id, statement=verdict.statement, signature=verdict.signature,
        reviewer=signer.id, approve=verdict.approve,
    )  # fmt: skip
