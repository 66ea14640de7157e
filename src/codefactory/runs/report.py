"""A run's full record, for `runs show`, the API and the dashboard."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from codefactory.store.runs import RunStore, run_as_dict


def run_report(store: RunStore, run_id: str) -> dict[str, Any] | None:
    """Everything stored about a run; None when there is no such run."""
    run = store.get_run(run_id)
    if run is None:
        return None
    trigger = store.get_trigger(run.trigger_id)
    report = run_as_dict(run)
    report["trigger"] = (
        {
            "source": trigger.source,
            "external_id": trigger.external_id,
            "actor": trigger.actor,
            "title": trigger.title,
            "labels": list(trigger.labels),
            "payload_digest": trigger.payload_digest,
        }
        if trigger
        else None
    )
    report["decisions"] = store.decisions(run_id)
    report["checks"] = store.check_runs(run_id)
    report["findings"] = [
        {
            "round": round_number,
            "check": f.check,
            "rule": f.rule,
            "severity": f.severity.value,
            "path": f.path,
            "line": f.line,
            "message": f.message,
            "blocking": f.blocking,
        }
        for round_number, f in store.findings(run_id)
    ]
    report["package"] = store.get_package(run_id)
    report["reviews"] = store.reviews(run_id)
    return report


def render_report(console: Console, report: dict[str, Any]) -> None:
    """Print a run report for a human."""
    console.print(
        f"[bold]{report['id']}[/]  {report['kind']}  state [bold]{report['state']}[/]",
        highlight=False,
    )
    if report["reason"]:
        console.print(f"reason: {report['reason']}", highlight=False)
    console.print(
        f"sponsor: {report['sponsor']}  agent: {report['agent_id']}  repo: {report['repository']}",
        highlight=False,
    )
    states = Table("state", "at", "reason", title="states")
    for item in report["history"]:
        states.add_row(item["state"], item["at"], item["reason"])
    console.print(states)
    if report["checks"]:
        checks = Table("round", "check", "passed", "summary", title="checks")
        for check in report["checks"]:
            checks.add_row(
                str(check["round"]),
                check["check"],
                "yes" if check["passed"] else "NO",
                check["summary"],
            )
        console.print(checks)
    for finding in report["findings"]:
        console.print(
            f"  round {finding['round']} {finding['check']} {finding['rule']} "
            f"{finding['path']}:{finding['line']} {finding['message']}",
            highlight=False,
        )
    if report["package"]:
        console.print(f"package: {report['package']['directory']}", highlight=False)
