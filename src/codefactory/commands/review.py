"""Review commands: `review approve`, `review reject` (signed verdicts), `review statement`.

A verdict is a statement over the run, its head commit and its package digest, signed with
the reviewer's own SSH key (`ssh-keygen -Y sign -n codefactory-review`); `--as` names who
signs, never proves it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from codefactory.commands.common import JsonOption, build, console, fail, print_json
from codefactory.commands.signed import (
    KeyOption,
    PersonOption,
    SignatureOption,
    StatementOption,
    signed_statement,
)

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
    from codefactory.store.runs import run_as_dict

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
        fail(escape(str(err)))
    if as_json:
        print_json(run_as_dict(run))
    else:
        console.print(
            f"run [bold]{escape(run.id)}[/]: {run.state.value} ({escape(run.reason)})",
            highlight=False,
        )


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
        fail(escape(str(err)))
    sys.stdout.buffer.write(body)
    sys.stdout.flush()
