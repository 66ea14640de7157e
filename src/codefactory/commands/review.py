"""Review commands: `review approve`, `review reject`."""

from __future__ import annotations

from typing import Annotated

import typer

from codefactory.commands.common import JsonOption, build, console, fail, print_json

review_app = typer.Typer(help="Approve or reject a run's change.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add these commands to the root app."""
    app.add_typer(review_app, name="review")


def _decide(run_id: str, reviewer: str, approve: bool, comment: str, as_json: bool) -> None:
    from codefactory.review.errors import ReviewError
    from codefactory.store.errors import StoreError
    from codefactory.store.runs import run_as_dict

    try:
        run = build().review.decide(run_id, reviewer=reviewer, approve=approve, comment=comment)
    except (ReviewError, StoreError) as err:
        fail(str(err))
    if as_json:
        print_json(run_as_dict(run))
    else:
        console.print(f"run [bold]{run.id}[/]: {run.state.value} ({run.reason})", highlight=False)


@review_app.command("approve")
def review_approve(
    run_id: str,
    reviewer: Annotated[str, typer.Option("--as", help="Who approves (not the sponsor).")],
    comment: str = "",
    as_json: JsonOption = False,
) -> None:
    """Approve a run's change; segregation of duties: never the run's sponsor."""
    _decide(run_id, reviewer, True, comment, as_json)


@review_app.command("reject")
def review_reject(
    run_id: str,
    reviewer: Annotated[str, typer.Option("--as", help="Who rejects.")],
    comment: str = "",
    as_json: JsonOption = False,
) -> None:
    """Reject a run's change."""
    _decide(run_id, reviewer, False, comment, as_json)
