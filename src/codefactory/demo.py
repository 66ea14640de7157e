"""The demo: a sample service, three tickets, two reviewed runs and one refused, on defaults.

Everything it needs ships in the package (the service template, the tickets and the one
advisory record), so it runs from a user's clone with no other data.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from codefactory.config import Settings
from codefactory.domain import Run, RunState
from codefactory.runs.loop import RunObserver
from codefactory.store.runs import RunStore

TEMPLATE = Path(__file__).parent / "demo_template"
SPONSOR = "priya.shah"
REVIEWER = "jordan.lee"
EXPECTED = {"SVC-101": RunState.HANDED_OFF, "SVC-102": RunState.HANDED_OFF}


@dataclass(frozen=True, kw_only=True)
class DemoRun:
    """One ticket's outcome for the summary table."""

    ticket: str
    run: Run
    checks: str


def create_sample_repository(target: Path) -> Path:
    """A fresh git repository holding the sample service, committed by its developer."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(TEMPLATE / "sample-service", target)
    identity = ["-c", "user.name=Sample Developer", "-c", "user.email=dev@bank.example"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "sample"]):
        subprocess.run(  # noqa: S603 - fixed git arguments on a folder we just created
            ["git", "-C", str(target), *identity, *args], check=True, capture_output=True
        )
    return target


def _checks(store: RunStore, run: Run) -> str:
    """The last round's checks of a run, e.g. `lint ok, tests ok, sca ok`."""
    checks = store.check_runs(run.id)
    if not checks:
        return "-"
    last = max(check["round"] for check in checks)
    return ", ".join(
        f"{c['check']} {'ok' if c['passed'] else 'FAIL'}" for c in checks if c["round"] == last
    )


def run_demo(settings: Settings, *, console: Console, progress: RunObserver | None) -> bool:
    """Run the demo; prints where each artifact is and returns whether it ended as expected."""
    from codefactory.factory import build_factory
    from codefactory.runs.intake import accept_ticket

    factory = build_factory(settings, observer=progress)
    repo = create_sample_repository(settings.data_dir / "demo" / "sample-service")
    console.print(f"sample service repository: {repo}", highlight=False)
    outcomes: list[DemoRun] = []
    for ticket in sorted((TEMPLATE / "tickets").glob("*.json")):
        console.print(f"ticket {ticket.stem}: starting a run", highlight=False)
        run = accept_ticket(factory, payload=ticket.read_bytes(), repo=repo)
        if run.state is RunState.IN_REVIEW:
            console.print(f"  {run.id} in review; approving as {REVIEWER}", highlight=False)
            run = factory.review.decide(
                run.id, reviewer=REVIEWER, approve=True, comment="demo review"
            )
        outcomes.append(DemoRun(ticket=ticket.stem, run=run, checks=_checks(factory.store, run)))
    verification = factory.audit.verify()
    _print_summary(console, outcomes, verification.ok, verification.reason, settings)
    expected_states = {o.ticket: o.run.state for o in outcomes}
    return (
        verification.ok
        and all(expected_states.get(k) is v for k, v in EXPECTED.items())
        and expected_states.get("SVC-103") is RunState.REFUSED
    )


def _print_summary(
    console: Console,
    outcomes: list[DemoRun],
    audit_ok: bool,
    audit_reason: str,
    settings: Settings,
) -> None:
    table = Table(
        "run", "ticket", "state", "checks", "package folder or reason", "audit", title="demo"
    )
    audit_cell = "verified" if audit_ok else f"FAILED: {audit_reason}"
    for outcome in outcomes:
        run = outcome.run
        detail = run.package_dir or run.reason
        table.add_row(run.id, outcome.ticket, run.state.value, outcome.checks, detail, audit_cell)
    console.print(table)
    console.print(f"database:       {settings.database_url}", highlight=False)
    console.print(f"change packages: {settings.packages_dir.resolve()}", highlight=False)
    console.print(f"forge (bare git): {settings.forge_dir.resolve()}", highlight=False)
    console.print(f"check evidence: {(settings.data_dir / 'evidence').resolve()}", highlight=False)
    console.print("inspect a run:  .venv/bin/codefactory runs show <run-id>", highlight=False)
