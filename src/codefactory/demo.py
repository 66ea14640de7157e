"""The demo: a sample service, four tickets, three reviewed runs and one refused, on defaults.

Everything it needs ships in the package (the service template, the tickets, the one
advisory record and the model transcript of the bug fix), so it runs from a user's clone
with no other data. The bug ticket (SVC-104) is taken by the in-harness agent through the
model gateway; with no upstream configured the gateway replays the shipped transcript.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from codefactory.config import Settings
from codefactory.domain import Run, RunState
from codefactory.runs.loop import RunObserver
from codefactory.store.runs import RunStore
from codefactory.terminal import shown

if TYPE_CHECKING:
    from codefactory.factory import Factory

TEMPLATE = Path(__file__).parent / "demo_template"
SPONSOR = "priya.shah"
REVIEWER = "jordan.lee"
EXPECTED = {
    "SVC-101": RunState.HANDED_OFF,
    "SVC-102": RunState.HANDED_OFF,
    "SVC-104": RunState.HANDED_OFF,
}
DEMO_TRANSCRIPT = TEMPLATE / "transcripts" / "SVC-104.json"


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
    # a stray __pycache__ (an interpreter that ran the template's tests) is not the service
    shutil.copytree(
        TEMPLATE / "sample-service", target, ignore=shutil.ignore_patterns("__pycache__")
    )
    identity = ["-c", "user.name=Sample Developer", "-c", "user.email=dev@bank.example"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "sample"]):
        subprocess.run(  # noqa: S603 - fixed git arguments on a folder we just created
            ["git", "-C", str(target), *identity, *args], check=True, capture_output=True
        )
    return target


@dataclass(frozen=True, kw_only=True)
class DemoPeople:
    """The demo's directory of people, kept beside (never inside) its data folder."""

    directory_file: Path
    reviewer_key: Path


def people_folder(data_dir: Path) -> Path:
    """`<data folder>-people`: a sibling of the data folder, which alone cannot add a person."""
    resolved = data_dir.expanduser().resolve()
    return resolved.with_name(resolved.name + "-people")


def write_demo_people(folder: Path) -> DemoPeople:
    """A directory file with the sponsor (whose `unix` identity is the OS account running the
    demo, the CLI's logged-in person) and a reviewer with a freshly generated SSH key."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(mode=0o700, parents=True)
    key = folder / REVIEWER
    subprocess.run(  # noqa: S603 - fixed ssh-keygen arguments, a path we just created
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{REVIEWER} (demo)", "-f", str(key)],
        check=True,
        capture_output=True,
    )
    public = key.with_name(key.name + ".pub").read_text(encoding="ascii").strip()
    account = pwd.getpwuid(os.geteuid()).pw_name
    directory = folder / "directory.toml"
    directory.write_text(
        f'''# The demo's directory of people (identity.directory_file); a bank keeps its own.
[people."{SPONSOR}"]
name = "Priya Shah"
email = "priya.shah@bank.example"
roles = ["sponsor"]
identities = {{ unix = [{_toml(account)}], jira = ["{SPONSOR}"] }}

[people."{REVIEWER}"]
name = "Jordan Lee"
email = "jordan.lee@bank.example"
roles = ["reviewer"]
ssh_keys = [{_toml(public)}]
''',
        encoding="utf-8",
    )
    return DemoPeople(directory_file=directory, reviewer_key=key)


def _toml(text: str) -> str:
    """A TOML basic string (JSON's escaping is TOML's for these characters)."""
    import json

    return json.dumps(text)


def _checks(store: RunStore, run: Run) -> str:
    """The last round's checks of a run, e.g. `lint ok, tests ok, sca ok`."""
    checks = store.check_runs(run.id)
    if not checks:
        return "-"
    last = max(check["round"] for check in checks)
    return ", ".join(
        f"{c['check']} {'ok' if c['passed'] else 'FAIL'}" for c in checks if c["round"] == last
    )


@dataclass(frozen=True, kw_only=True)
class DemoReport:
    """The demo's outcome: one entry per ticket, the audit verification, where things are."""

    outcomes: tuple[DemoRun, ...]
    audit_ok: bool
    audit_reason: str
    repository: Path

    @property
    def ok(self) -> bool:
        """Three runs handed off, the CI ticket refused, the audit log intact."""
        states = {o.ticket: o.run.state for o in self.outcomes}
        return (
            self.audit_ok
            and all(states.get(k) is v for k, v in EXPECTED.items())
            and states.get("SVC-103") is RunState.REFUSED
        )

    def as_dict(self, settings: Settings) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "repository": str(self.repository),
            "audit": {"ok": self.audit_ok, "reason": self.audit_reason},
            "runs": [
                {
                    "ticket": o.ticket,
                    "run_id": o.run.id,
                    "state": o.run.state.value,
                    "reason": o.run.reason,
                    "checks": o.checks,
                    "package_dir": o.run.package_dir,
                    "branch": o.run.branch,
                }
                for o in self.outcomes
            ],
            "artifacts": artifact_locations(settings),
        }


def artifact_locations(settings: Settings) -> dict[str, str]:
    """Where the demo left each kind of artifact."""
    from codefactory.store.urls import shown

    return {
        "database": shown(settings.database_url),  # a PostgreSQL URL's password hidden
        "change packages": str(settings.packages_dir.resolve()),
        "forge (bare git)": str(settings.forge_dir.resolve()),
        "check evidence": str((settings.data_dir / "evidence").resolve()),
    }


def run_demo(settings: Settings, *, log: Console, progress: RunObserver | None) -> DemoReport:
    """Run the four tickets against a fresh sample service and review the good runs."""
    from codefactory.dispatch.service import leased_driving
    from codefactory.factory import build_factory
    from codefactory.runs.tickets import accept_ticket

    if not settings.gateway.upstream:  # the shipped transcript stands in for a provider
        gateway = settings.gateway.model_copy(update={"upstream": f"replay:{DEMO_TRANSCRIPT}"})
        settings = settings.model_copy(update={"gateway": gateway})
    if settings.advisories_dir is None:  # the shipped record: never synced, kept for the demo
        verify = settings.verify.model_copy(update={"advisories_max_age_days": None})
        settings = settings.model_copy(update={"verify": verify})
        log.print(
            "advisories: the record shipped with codefactory (never synced); the demo accepts "
            "it, a factory blocks on it (verify.advisories_max_age_days)",
            highlight=False,
        )
    # the demo's own people (whatever directory is configured): a sponsor who is the OS
    # account running it, a reviewer who signs approvals with a freshly generated key
    people = write_demo_people(people_folder(settings.data_dir))
    identity = settings.identity.model_copy(update={"directory_file": people.directory_file})
    settings = settings.model_copy(update={"identity": identity})
    log.print(f"directory of people: {people.directory_file}", highlight=False)
    factory = build_factory(settings, observer=progress)
    repo = create_sample_repository(settings.data_dir / "demo" / "sample-service")
    log.print(f"sample service repository: {repo}", highlight=False)
    outcomes: list[DemoRun] = []
    for ticket in sorted((TEMPLATE / "tickets").glob("*.json")):
        log.print(f"ticket {ticket.stem}: starting a run", highlight=False)
        with leased_driving(factory, role="demo") as driver:
            run = accept_ticket(factory, payload=ticket.read_bytes(), repo=repo, drive=driver.drive)
        if run.state is RunState.IN_REVIEW:
            log.print(
                f"  {run.id} in review; approving as {REVIEWER}, signed with {people.reviewer_key}",
                highlight=False,
            )
            run = approve_signed(factory, run.id, people.reviewer_key)
        outcomes.append(DemoRun(ticket=ticket.stem, run=run, checks=_checks(factory.store, run)))
    verification = factory.audit.verify()
    return DemoReport(
        outcomes=tuple(outcomes),
        audit_ok=verification.ok,
        audit_reason=verification.reason,
        repository=repo,
    )


def approve_signed(factory: Factory, run_id: str, key: Path) -> Run:
    """The reviewer's approval as `codefactory review approve RUN --as REVIEWER --key KEY`
    gives it: a statement over the run, signed with the reviewer's own key."""
    from codefactory.identity.ssh_signatures import REVIEW_NAMESPACE, sign

    body = factory.review.statement_for(
        run_id, reviewer=REVIEWER, approve=True, comment="demo review"
    )
    return factory.review.decide(
        run_id,
        statement=body,
        signature=sign(body, key, REVIEW_NAMESPACE),
        reviewer=REVIEWER,
        approve=True,
    )


def print_summary(console: Console, report: DemoReport, settings: Settings) -> None:
    """The summary table and where every artifact is."""
    table = Table(
        "run", "ticket", "state", "checks", "package folder or reason", "audit", title="demo"
    )
    audit_cell = "verified" if report.audit_ok else f"FAILED: {report.audit_reason}"
    for outcome in report.outcomes:
        run = outcome.run
        detail = run.package_dir or run.reason
        table.add_row(  # reasons quote ticket text
            run.id,
            outcome.ticket,
            run.state.value,
            outcome.checks,
            shown(detail),
            shown(audit_cell),
        )
    console.print(table)
    for name, where in artifact_locations(settings).items():
        console.print(f"{name + ':':<18}{where}", highlight=False)
    console.print(
        f"{'inspect a run:':<18}.venv/bin/codefactory runs show <run-id>", highlight=False
    )
