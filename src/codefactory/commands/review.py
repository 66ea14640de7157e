"""Review commands: `review approve`, `review reject` (signed verdicts), `review statement`,
`review hand-off` (after the CAB's approval), `review sign-off` and
`review sign-off-statement` (QA and UAT).

A verdict is a statement over the run, its head commit and its package digest, signed with
the reviewer's own SSH key (`ssh-keygen -Y sign -n codefactory-review`); a sign-off likewise
(`-n codefactory-sign-off`), with its stage; `--as` names who signs, never proves it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from codefactory.commands.common import JsonOption, build, console, fail, print_json
from codefactory.commands.signed import (
    KeyOption,
    PersonOption,
    SignatureOption,
    StatementOption,
    signed_statement,
)
from codefactory.terminal import shown

if TYPE_CHECKING:
    from codefactory.domain import Run

review_app = typer.Typer(help="Approve or reject a run's change.", no_args_is_help=True)

CommentOption = Annotated[str, typer.Option(help="Why (part of the signed statement).")]


def register(app: typer.Typer) -> None:
    """Add these commands to the root app."""
    app.add_typer(review_app, name="review")


def _decide(
    run_id: str,
    reviewer: str,
    approve: bool,
    comment: str,
    key: Path | None,
    statement: Path | None,
    signature: Path | None,
    as_json: bool,
) -> None:
    from codefactory.identity.errors import IdentityError
    from codefactory.identity.ssh_signatures import REVIEW_NAMESPACE
    from codefactory.package.errors import PackageError
    from codefactory.review.errors import ReviewError
    from codefactory.store.errors import StoreError

    factory = build()
    verdict = "approve" if approve else "reject"
    try:
        body, sig = signed_statement(
            lambda: factory.review.statement_for(
                run_id, reviewer=reviewer, approve=approve, comment=comment
            ),
            key=key,
            statement=statement,
            signature=signature,
            namespace=REVIEW_NAMESPACE,
            how_to_sign=f"print the statement with `codefactory review statement {run_id} "
            f"--verdict {verdict} --as YOU`",
        )
        run = factory.review.decide(
            run_id, statement=body, signature=sig, reviewer=reviewer, approve=approve
        )
    except (ReviewError, StoreError, IdentityError, PackageError) as err:
        fail(str(err))
    _show(as_json, run)


@review_app.command("approve")
def review_approve(
    run_id: str,
    reviewer: PersonOption,
    key: KeyOption = None,
    comment: CommentOption = "",
    statement: StatementOption = None,
    signature: SignatureOption = None,
    as_json: JsonOption = False,
) -> None:
    """Approve a run's change with a signed statement; segregation of duties: never the
    sponsor, the agent, the requester or the person who caused the trigger."""
    _decide(run_id, reviewer, True, comment, key, statement, signature, as_json)


@review_app.command("reject")
def review_reject(
    run_id: str,
    reviewer: PersonOption,
    key: KeyOption = None,
    comment: CommentOption = "",
    statement: StatementOption = None,
    signature: SignatureOption = None,
    as_json: JsonOption = False,
) -> None:
    """Reject a run's change with a signed statement."""
    _decide(run_id, reviewer, False, comment, key, statement, signature, as_json)


@review_app.command("statement")
def review_statement(
    run_id: str,
    reviewer: PersonOption,
    verdict: Annotated[str, typer.Option(help="approve or reject.")] = "approve",
    comment: CommentOption = "",
) -> None:
    """Print the statement to sign elsewhere (`ssh-keygen -Y sign -n codefactory-review`),
    exactly as the factory will check it; submit with `--statement` and `--signature`."""
    import sys

    from codefactory.identity.errors import IdentityError
    from codefactory.package.errors import PackageError
    from codefactory.review.errors import ReviewError
    from codefactory.store.errors import StoreError

    if verdict not in ("approve", "reject"):
        fail("--verdict is approve or reject")
    try:
        body = build().review.statement_for(
            run_id, reviewer=reviewer, approve=verdict == "approve", comment=comment
        )
    except (ReviewError, StoreError, IdentityError, PackageError) as err:
        fail(str(err))
    sys.stdout.buffer.write(body)
    sys.stdout.flush()


StageOption = Annotated[str, typer.Option("--stage", help="qa or uat.")]
RejectOption = Annotated[
    bool, typer.Option("--reject", help="Reject the change (give --reason).", show_default=False)
]
ReasonOption = Annotated[str, typer.Option(help="Why (part of the signed statement).")]


def _show(run_as_json: bool, run: Run) -> None:
    from codefactory.store.runs import run_as_dict

    if run_as_json:
        print_json(run_as_dict(run))
    else:
        console.print(
            f"run [bold]{shown(run.id)}[/]: {run.state.value} ({shown(run.reason)})",
            highlight=False,
        )


@review_app.command("sign-off")
def review_sign_off(
    run_id: str,
    signer: PersonOption,
    stage: StageOption,
    key: KeyOption = None,
    reject: RejectOption = False,
    reason: ReasonOption = "",
    statement: StatementOption = None,
    signature: SignatureOption = None,
    as_json: JsonOption = False,
) -> None:
    """Sign off QA (`--stage qa`) or UAT (`--stage uat`) of an approved run with a signed
    statement: a person with that role, never the sponsor, the agent, the requester or the
    person who caused the trigger. `--reject --reason TEXT` ends the run `rejected`."""
    from codefactory.identity.errors import IdentityError
    from codefactory.identity.statements import SIGN_OFF_NAMESPACE
    from codefactory.package.errors import PackageError
    from codefactory.review.errors import ReviewError
    from codefactory.store.errors import StoreError

    factory = build()
    verdict = "--reject" if reject else ""
    try:
        body, sig = signed_statement(
            lambda: factory.review.sign_off_statement(
                run_id, stage=stage, signer=signer, accept=not reject, reason=reason
            ),
            key=key,
            statement=statement,
            signature=signature,
            namespace=SIGN_OFF_NAMESPACE,
            how_to_sign=f"print the statement with `codefactory review sign-off-statement "
            f"{run_id} --stage {stage} --as YOU {verdict}`",
        )
        run = factory.review.sign_off(
            run_id, stage=stage, statement=body, signature=sig, signer=signer, accept=not reject
        )
    except (ReviewError, StoreError, IdentityError, PackageError, ValueError) as err:
        fail(str(err))
    _show(as_json, run)


@review_app.command("sign-off-statement")
def review_sign_off_statement(
    run_id: str,
    signer: PersonOption,
    stage: StageOption,
    reject: RejectOption = False,
    reason: ReasonOption = "",
) -> None:
    """Print the sign-off statement to sign elsewhere (`ssh-keygen -Y sign -n
    codefactory-sign-off`); submit with `review sign-off --statement --signature`."""
    import sys

    from codefactory.identity.errors import IdentityError
    from codefactory.package.errors import PackageError
    from codefactory.review.errors import ReviewError
    from codefactory.store.errors import StoreError

    try:
        body = build().review.sign_off_statement(
            run_id, stage=stage, signer=signer, accept=not reject, reason=reason
        )
    except (ReviewError, StoreError, IdentityError, PackageError, ValueError) as err:
        fail(str(err))
    sys.stdout.buffer.write(body)
    sys.stdout.flush()


@review_app.command("hand-off")
def review_hand_off(run_id: str, as_json: JsonOption = False) -> None:
    """Hand off an approved run that waits for the CAB: reads the `approval` of its
    ServiceNow change request now. Exits 1 while the CAB has not decided or ServiceNow
    cannot be asked (the run stays approved); a CAB rejection ends the run `rejected`."""
    from codefactory.package.errors import PackageError
    from codefactory.review.errors import ReviewError
    from codefactory.store.errors import StoreError

    try:
        run = build().review.hand_off(run_id)
    except (ReviewError, StoreError, PackageError) as err:
        fail(str(err))
    _show(as_json, run)
