"""The `codefactory` command: trigger runs, list and show them, review, verify the audit log."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from codefactory.config import Settings, is_terminal_attached, load_settings
from codefactory.domain import RunState

app = typer.Typer(
    help="Code Factory: a governed harness for background coding agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
runs_app = typer.Typer(help="List and inspect runs.", no_args_is_help=True)
review_app = typer.Typer(help="Approve or reject a run's change.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(review_app, name="review")
app.add_typer(audit_app, name="audit")

# Without a terminal (CI, pipes) Rich falls back to 80 columns; tables of paths need more.
console = Console() if sys.stdout.isatty() else Console(width=200)
errors = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


class CliState:
    settings: Settings = Settings()


state = CliState()


@app.callback()
def main(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir", help="Data folder (database, packages, forge).", show_default=False
        ),
    ] = None,
) -> None:
    """Global options."""
    state.settings = load_settings(data_dir)


def fail(message: str, code: int = 1) -> NoReturn:
    """One clear line on stderr, then exit."""
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def observer() -> Any:
    """A progress printer for runs, only when a terminal is attached (no noise in CI logs)."""
    if not is_terminal_attached():
        return None

    def show(run_id: str, run_state: RunState, reason: str) -> None:
        colour = {"failed": "red", "refused": "yellow", "rejected": "yellow"}.get(
            run_state.value, "cyan"
        )
        detail = f" [dim]{reason}[/]" if reason else ""
        console.print(f"  {run_id} → [{colour}]{run_state.value}[/]{detail}", highlight=False)

    return show


@app.command()
def trigger(
    repo: Annotated[Path, typer.Option(help="The git repository to change.")],
    ticket: Annotated[Path, typer.Option(help="A Jira issue as JSON (REST API format).")],
    as_json: JsonOption = False,
) -> None:
    """Start a run from a Jira ticket and drive it until it waits for review or ends."""
    from codefactory.factory import build_factory
    from codefactory.runs.intake import accept_ticket

    try:
        payload = ticket.read_bytes()
    except OSError as err:
        fail(f"cannot read the ticket {ticket}: {err.strerror}")
    factory = build_factory(state.settings, observer=None if as_json else observer())
    with (
        console.status("running", spinner="dots")
        if is_terminal_attached() and not as_json
        else _null()
    ):
        run = accept_ticket(factory, payload=payload, repo=repo)
    if as_json:
        from codefactory.store.runs import run_as_dict

        print_json(run_as_dict(run))
    else:
        console.print(f"run [bold]{run.id}[/]: {run.state.value}", highlight=False)
        if run.package_dir:
            console.print(f"  package: {run.package_dir}", highlight=False)
            console.print(
                f"  branch:  {run.branch} in {factory.settings.forge_dir}", highlight=False
            )
    if run.state in (RunState.FAILED, RunState.REFUSED):
        fail(f"run {run.id} {run.state.value}: {run.reason}")


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


@runs_app.command("list")
def runs_list(as_json: JsonOption = False, limit: int = 100) -> None:
    """The latest runs, newest first."""
    from codefactory.store.runs import run_as_dict

    factory = _factory()
    found = factory.store.search_runs(limit=limit)
    if as_json:
        print_json([run_as_dict(run) for run in found])
        return
    table = Table("run", "state", "kind", "sponsor", "created", "reason")
    for run in found:
        table.add_row(
            run.id,
            run.state.value,
            run.kind.value,
            run.sponsor,
            f"{run.created_at:%Y-%m-%d %H:%M:%S}",
            run.reason[:80],
        )
    console.print(table)


@runs_app.command("show")
def runs_show(run_id: str, as_json: JsonOption = False) -> None:
    """One run: its states with times, decisions, checks, findings, package and reviews."""
    from codefactory.runs.report import run_report

    factory = _factory()
    report = run_report(factory.store, run_id)
    if report is None:
        fail(f"no run with id {run_id!r}")
    if as_json:
        print_json(report)
        return
    from codefactory.runs.report import render_report

    render_report(console, report)


def _review(run_id: str, reviewer: str, approve: bool, comment: str, as_json: bool) -> None:
    from codefactory.review.errors import ReviewError
    from codefactory.store.errors import StoreError
    from codefactory.store.runs import run_as_dict

    factory = _factory()
    try:
        run = factory.review.decide(run_id, reviewer=reviewer, approve=approve, comment=comment)
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
    _review(run_id, reviewer, True, comment, as_json)


@review_app.command("reject")
def review_reject(
    run_id: str,
    reviewer: Annotated[str, typer.Option("--as", help="Who rejects.")],
    comment: str = "",
    as_json: JsonOption = False,
) -> None:
    """Reject a run's change."""
    _review(run_id, reviewer, False, comment, as_json)


@audit_app.command("verify")
def audit_verify(as_json: JsonOption = False) -> None:
    """Recompute the hash chain; names the first event altered, removed or reordered."""
    factory = _factory()
    report = factory.audit.verify()
    if as_json:
        print_json(
            {
                "ok": report.ok,
                "count": report.count,
                "first_bad_seq": report.first_bad_seq,
                "first_bad_name": report.first_bad_name,
                "reason": report.reason,
            }
        )
    elif report.ok:
        console.print(f"audit log verified: {report.count} events, chain intact")
    if not report.ok:
        fail(f"audit log verification failed: {report.reason}")


@app.command()
def demo(
    serve: Annotated[bool, typer.Option(help="Keep the web app up afterwards.")] = False,
    port: int = 8000,
    as_json: JsonOption = False,
) -> None:
    """Create a sample service, fire three tickets, review the good runs, print a summary."""
    from codefactory.demo import print_summary, run_demo

    report = run_demo(
        state.settings, log=errors if as_json else console, progress=None if as_json else observer()
    )
    if as_json:
        print_json(report.as_dict(state.settings))
    else:
        print_summary(console, report, state.settings)
    if serve:
        _serve("127.0.0.1", port)
    if not report.ok:
        fail("the demo did not end as expected (see the summary)")


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the web app (runs API and dashboard)."""
    _serve(host, port)


def _serve(host: str, port: int) -> None:
    import uvicorn

    from codefactory.web.app import create_app

    console.print(f"serving on http://{host}:{port} (Ctrl-C to stop)", highlight=False)
    uvicorn.run(create_app(_factory()), host=host, port=port, log_level="warning")


def _factory() -> Any:
    from codefactory.factory import build_factory

    return build_factory(state.settings)
