"""Run commands: `trigger`, `runs list`, `runs show`, `demo`."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from codefactory.commands.common import (
    JsonOption,
    build,
    console,
    errors,
    fail,
    observer,
    print_json,
    progress,
    read_store,
    state,
)
from codefactory.terminal import shown

runs_app = typer.Typer(help="List and inspect runs.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add these commands to the root app."""
    app.command()(trigger)
    app.command()(demo)
    app.add_typer(runs_app, name="runs")


def trigger(
    repo: Annotated[
        Path,
        typer.Option(
            help="The git repository to change (a local checkout; the run names it by its "
            "canonical id: `triggers.repositories`' id for it, else `local:<path>`)."
        ),
    ],
    ticket: Annotated[Path, typer.Option(help="A Jira issue as JSON (REST API format).")],
    engine: Annotated[
        str,
        typer.Option(
            help="Ask for an engine by its registry name (`agent:pydantic-ai`, `cli:codex`); "
            "the engine registry and policy still decide. Default: the kind's engine."
        ),
    ] = "",
    as_json: JsonOption = False,
) -> None:
    """Start a run from a Jira ticket and drive it until it waits for review or ends."""
    from codefactory.domain import RunState
    from codefactory.runs.tickets import accept_ticket
    from codefactory.store.runs import run_as_dict

    try:
        payload = ticket.read_bytes()
    except OSError as err:
        fail(f"cannot read the ticket {ticket}: {err.strerror}")
    from codefactory.dispatch.service import leased_driving

    factory = build(None if as_json else observer())
    with progress("running", quiet=as_json), leased_driving(factory, role="cli") as driver:
        run = accept_ticket(factory, payload=payload, repo=repo, engine=engine, drive=driver.drive)
    # Everything printed is escaped for Rich markup: reasons and names quote payload text.
    if as_json:
        print_json(run_as_dict(run))
    else:
        console.print(f"run [bold]{shown(run.id)}[/]: {run.state.value}", highlight=False)
        console.print(f"  repository: {shown(run.repository)}", highlight=False)
        console.print(f"  sponsor: {shown(run.sponsor or '-')}", highlight=False)
        if run.state is RunState.NO_CHANGE:
            console.print(f"  {shown(run.reason)}", highlight=False)
        if run.package_dir:
            console.print(f"  package: {shown(run.package_dir)}", highlight=False)
            console.print(
                f"  branch:  {shown(run.branch)} in {shown(str(factory.settings.forge_dir))}",
                highlight=False,
            )
    if run.state in (RunState.FAILED, RunState.REFUSED):
        fail(f"run {run.id} {run.state.value}: {run.reason}")


@runs_app.command("list")
def runs_list(
    as_json: JsonOption = False,
    limit: int = 100,
    repository: Annotated[
        str | None,
        typer.Option(help="Only this repository's runs, by canonical id (`acme/payments`)."),
    ] = None,
) -> None:
    """The latest runs, newest first, with the repository each changes (its canonical id)."""
    from codefactory.store.runs import run_as_dict

    found = read_store().search_runs(limit=limit, repository=repository)
    if as_json:
        print_json([run_as_dict(run) for run in found])
        return
    table = Table("run")
    table.add_column("repository", overflow="fold")  # an id is never cut short: fold it
    for column in ("state", "kind", "sponsor", "created", "reason"):
        table.add_column(column)
    for run in found:
        table.add_row(  # cells are markup: every stored value is escaped
            shown(run.id),
            shown(run.repository),
            run.state.value,
            run.kind.value,
            shown(run.sponsor),
            f"{run.created_at:%Y-%m-%d %H:%M:%S}",
            shown(run.reason[:80]),
        )
    console.print(table)


@runs_app.command("show")
def runs_show(run_id: str, as_json: JsonOption = False) -> None:
    """One run: its states with times, decisions, checks, findings, package and reviews,
    and its regulated track (forge request and approvals, change request and CAB, QA and
    UAT sign-offs, merges)."""
    from codefactory.runs.report import render_report, run_report

    report = run_report(read_store(), run_id)
    if report is None:
        fail(f"no run with id {run_id!r}")
    if as_json:
        print_json(report)
    else:
        render_report(console, report)


@runs_app.command("replay")
def runs_replay(run_id: str, as_json: JsonOption = False) -> None:
    """Re-execute a finished run against its recorded model traffic, in a fresh sandbox at
    the same base commit; exit 0 only when the diff and every check verdict are the same."""
    from codefactory.audit.witnessing import WitnessedAuditLog
    from codefactory.factory import build_factory
    from codefactory.runs.replay import (
        ReplayImpossible,
        cassette_of,
        replay_run,
        verify_cassette,
    )

    settings = state.settings
    factory = build()
    run = factory.store.get_run(run_id)
    if run is None:
        fail(f"no run with id {run_id!r}")
    # What the run was is read from the audit log (its run-created event, its model calls):
    # the log is verified first, locally, so an edited event cannot vouch for an edited row.
    audit = factory.audit
    log = audit.verify(offline=True) if isinstance(audit, WitnessedAuditLog) else audit.verify()
    if not log.ok:
        fail(f"not replayed: the audit log does not verify ({log.reason})")
    with tempfile.TemporaryDirectory(prefix="codefactory-replay-") as folder:
        verified = Path(folder) / f"{run.id}.yaml"  # what was checked is what is served
        try:
            cassette = cassette_of(settings.model_traffic_dir, run)
            verify_cassette(factory.store, run, cassette, copy_to=verified)
        except ReplayImpossible as err:
            fail(str(err))
        gateway = settings.gateway.model_copy(update={"upstream": f"replay:{verified}", "port": 0})
        replaying = build_factory(settings.model_copy(update={"gateway": gateway}))
        with progress("replaying", quiet=as_json):
            try:
                report = replay_run(replaying.loop, run)
            except ReplayImpossible as err:  # its engine or agent no longer cleared
                fail(str(err))
    if as_json:
        print_json(report.as_dict())
    else:
        console.print(
            f"replay {shown(report.replay_id)} of run {shown(run.id)} ({shown(report.engine)})"
        )
        console.print(f"  same diff:   {'yes' if report.same_diff else 'NO'}")
        console.print(f"  same checks: {'yes' if report.same_checks else 'NO'}")
        if report.error:
            console.print(f"  stopped: {shown(report.error)}", highlight=False)
    if not (report.same_diff and report.same_checks):
        raise typer.Exit(1)


def demo(
    serve: Annotated[bool, typer.Option(help="Keep the web app up afterwards.")] = False,
    port: int = 8000,
    as_json: JsonOption = False,
) -> None:
    """Create a sample service, fire three tickets, review the good runs, print a summary."""
    from codefactory.commands.serve import serve_app
    from codefactory.demo import print_summary, run_demo

    report = run_demo(
        state.settings, log=errors if as_json else console, progress=None if as_json else observer()
    )
    if as_json:
        print_json(report.as_dict(state.settings))
    else:
        print_summary(console, report, state.settings)
    if serve:
        serve_app("127.0.0.1", port)
    if not report.ok:
        fail("the demo did not end as expected (see the summary)")
