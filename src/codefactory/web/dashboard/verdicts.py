"""Approve or reject from the run page: the statement to sign, and the signed verdict.

A verdict is the review desk's signed statement (`runs.review.ReviewDesk`): the page asks the
desk for the exact statement the signed-in person signs for the chosen verdict and comment
(`statement_for`), shows it with the `ssh-keygen -Y sign -n codefactory-review` command, and
takes back the armored signature in a POST that the desk checks (`decide`). The reviewer is
always the signed-in person, never a form field. The POST carries the session's CSRF token
(a random value kept in the signed session cookie, compared in constant time).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from codefactory.identity.directory import Person, Role
from codefactory.identity.errors import IdentityError
from codefactory.identity.ssh_signatures import REVIEW_NAMESPACE
from codefactory.package.errors import PackageError
from codefactory.review.errors import (
    FactsRefused,
    ReviewError,
    SegregationViolation,
    VerdictRefused,
)
from codefactory.runs.review import ReviewDesk, ReviewNotOpen
from codefactory.store.errors import RunNotFound, StoreError

CSRF_KEY = "dashboard_csrf"
MAX_COMMENT = 2_000
MAX_SIGNATURE = 16_384
VERDICTS = ("approve", "reject")
DESK_ERRORS = (ReviewError, StoreError, IdentityError, PackageError)
"""What `ReviewDesk.statement_for` and `decide` raise for a verdict that does not count."""


class FormInvalid(ValueError):
    """A verdict form that is not what the page sends (names the field and why)."""


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


def role_refusal(person: Person) -> str:
    """Why `person` may not review at all ("" when they hold the `reviewer` role)."""
    if person.has_role(Role.REVIEWER):
        return ""
    return (
        f"{person.id} does not hold the role 'reviewer' in the factory's directory, so "
        "their verdict would not count"
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


def verdict_of(value: str) -> str:
    """`approve` or `reject`; `FormInvalid` for anything else."""
    if value not in VERDICTS:
        raise FormInvalid(f"verdict must be approve or reject, not {value[:40]!r}")
    return value


def statement_to_sign(
    desk: ReviewDesk, run_id: str, reviewer: Person, verdict: str, comment: str
) -> StatementToSign:
    """The desk's statement for `reviewer`'s `verdict` with `comment`; raises the desk's
    errors (`DESK_ERRORS`) or `FormInvalid`."""
    if len(comment) > MAX_COMMENT:
        raise FormInvalid(f"the comment is longer than {MAX_COMMENT} characters")
    body = desk.statement_for(
        run_id, reviewer=reviewer.id, approve=verdict_of(verdict) == "approve", comment=comment
    )
    encoded = base64.b64encode(body).decode("ascii")
    return StatementToSign(
        verdict=verdict,
        comment=comment,
        text=body.decode("utf-8"),
        encoded=encoded,
        file_command=f"echo {encoded} | base64 -d > statement.json",
        sign_command=f"ssh-keygen -Y sign -f ~/.ssh/id_ed25519 -n {REVIEW_NAMESPACE} "
        "statement.json",
    )


@dataclass(frozen=True, kw_only=True)
class SignedVerdict:
    """A posted verdict: the statement's exact bytes and the armored SSH signature."""

    approve: bool
    statement: bytes
    signature: str


def signed_verdict(form: dict[str, str]) -> SignedVerdict:
    """The verdict in a posted form (`verdict`, `statement` base64, `signature`);
    `FormInvalid` names what is wrong."""
    approve = verdict_of(form.get("verdict", "")) == "approve"
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
    longer) in review or whose signed facts do not hold, 422 a statement or signature that
    does not count."""
    if refused or isinstance(err, SegregationViolation):
        return 403
    if isinstance(err, RunNotFound):
        return 404
    if isinstance(err, ReviewNotOpen | FactsRefused | PackageError):
        return 409
    if isinstance(err, VerdictRefused | FormInvalid | IdentityError):
        return 422
    return 400
