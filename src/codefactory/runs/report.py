"""A run's full record, for `runs show`, the API and the dashboard: with its regulated track
(`regulated_track`: the forge request and approvals, the change request and the CAB's word,
the QA and UAT sign-offs, the merge; `audit/regulated_track.py`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from codefactory.audit.events import (
    ContextGathered,
    ContextRead,
    ContextReadFailed,
    EgressAttempted,
    ModelCalled,
    ToolCalled,
    typed,
)
from codefactory.audit.port import AuditRecord
from codefactory.audit.regulated_track import regulated_track, track_lines
from codefactory.store.port import RunRepository
from codefactory.store.runs import run_as_dict
from codefactory.terminal import shown


def run_report(store: RunRepository, run_id: str) -> dict[str, Any] | None:
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
            "sender_kind": trigger.sender_kind,
            "sender": trigger.sender,
            "caused_by": trigger.caused_by,
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
    events = store.audit_events(run_id)
    report.update(engine_activity(events))
    report["context"] = context_activity(events)
    report["regulated_track"] = regulated_track(events)
    return report


def context_activity(events: list[AuditRecord]) -> dict[str, Any]:
    """What the run's context engine read: the items gathered for the task, what was left
    out or failed, and every read by reader (`loop`, `mcp`) with its outcome."""
    kinds = [typed(e) for e in events]
    gathered = next((e for e in reversed(kinds) if isinstance(e, ContextGathered)), None)
    reads = []
    for event in kinds:
        match event:
            case ContextRead(items=items, masked=masked):
                reads.append(_read(event, items=items, masked=masked, error=""))
            case ContextReadFailed(error=error):
                reads.append(_read(event, items=[], masked={}, error=error))
    return {
        "items": gathered.items if gathered else [],
        "left_out": gathered.left_out if gathered else [],
        "failures": gathered.failures if gathered else [],
        "reads": reads,
    }


def _read(
    event: ContextRead | ContextReadFailed, *, items: list[str], masked: dict[str, int], error: str
) -> dict[str, Any]:
    return {
        "reader": event.reader,
        "connector": event.connector,
        "operation": event.operation,
        "items": items,
        "masked": masked,
        "error": error,
    }


def engine_activity(events: Sequence[AuditRecord]) -> dict[str, Any]:
    """What the engine did, from the audit log (the gateway's record, not the engine's own
    account): `model_traffic` (requests, tokens, cost, per outcome), `tool_calls` by name
    (refused ones counted apart) and `egress` (every host the run's commands tried, with
    the phase and whether the proxy let it through)."""
    kinds = [typed(e) for e in events]
    records = [e for e in kinds if isinstance(e, ModelCalled)]
    calls = [c for c in records if c.attempt >= 1]  # reached the upstream
    traffic: dict[str, Any] = {
        "requests": len(calls),
        "refused": len(records) - len(calls),
        "input_tokens": sum(c.input_tokens for c in calls),
        "output_tokens": sum(c.output_tokens for c in calls),
        "cost_usd": round(sum(c.cost_usd for c in calls), 6),
        "usage_estimated": any(c.usage_estimated for c in calls),
        "outcomes": dict(Counter(c.outcome for c in records)),
        "models": sorted({c.model for c in calls} - {""}),
    }
    tools = [e for e in kinds if isinstance(e, ToolCalled)]
    hosts: dict[str, dict[str, Any]] = {}
    for attempt in (e for e in kinds if isinstance(e, EgressAttempted)):
        key = f"{attempt.host}:{attempt.port}"
        seen = hosts.setdefault(
            key, {"host": key, "attempts": 0, "allowed": False, "phases": set()}
        )
        seen["attempts"] += 1
        seen["allowed"] = seen["allowed"] or attempt.allowed
        seen["phases"].add(attempt.phase)
    return {
        "model_traffic": traffic,
        "tool_calls": {
            "total": len(tools),
            "refused": sum(1 for t in tools if not t.allowed),
            "by_tool": dict(Counter(t.tool for t in tools)),
        },
        "egress": [{**h, "phases": sorted(h["phases"])} for h in hosts.values()],
    }


def render_report(console: Console, report: dict[str, Any]) -> None:
    """Print a run report for a human. Every stored value is escaped for Rich markup (a
    title or reason `[/x]` prints as written, never as markup)."""
    e = shown
    console.print(
        f"[bold]{e(report['id'])}[/]  {e(report['kind'])}  state [bold]{e(report['state'])}[/]",
        highlight=False,
    )
    if report["reason"]:
        console.print(f"reason: {e(report['reason'])}", highlight=False)
    console.print(
        f"repository: {e(report['repository'])}  checkout: {e(report['repository_path'] or '-')}",
        highlight=False,
    )
    console.print(
        f"sponsor: {e(report['sponsor'])}  agent: {e(report['agent_id'])}", highlight=False
    )
    trigger = report.get("trigger") or {}
    if trigger:
        console.print(
            f"trigger: {e(trigger['source'])} {e(trigger['external_id'])}: {e(trigger['title'])}"
            f"  caused by: {e(trigger.get('caused_by') or '-')}",
            highlight=False,
        )
    states = Table("state", "at", "reason", title="states")
    for item in report["history"]:
        states.add_row(e(item["state"]), e(item["at"]), e(item["reason"]))
    console.print(states)
    if report["checks"]:
        checks = Table("round", "check", "passed", "summary", title="checks")
        for check in report["checks"]:
            checks.add_row(
                str(check["round"]),
                e(check["check"]),
                "yes" if check["passed"] else "NO",
                e(check["summary"]),
            )
        console.print(checks)
    for finding in report["findings"]:
        console.print(
            e(
                f"  round {finding['round']} {finding['check']} {finding['rule']} "
                f"{finding['path']}:{finding['line']} {finding['message']}"
            ),
            highlight=False,
        )
    traffic = report.get("model_traffic") or {}
    if traffic.get("requests"):
        console.print(
            e(
                f"engine {report['engine']}: {traffic['requests']} model requests, "
                f"{traffic['input_tokens']} in / {traffic['output_tokens']} out tokens, "
                f"${traffic['cost_usd']:.4f}"
            ),
            highlight=False,
        )
    for host in report.get("egress") or []:
        verdict = "allowed" if host["allowed"] else "DENIED"
        console.print(
            e(
                f"  egress {host['host']} {verdict} ({host['attempts']}x, "
                f"{', '.join(host['phases'])})"
            ),
            highlight=False,
        )
    context = report.get("context") or {}
    for item in context.get("items", []):
        console.print(f"  context {e(item)}", highlight=False)
    for failure in context.get("failures", []):
        console.print(f"  context not read: {e(failure)}", highlight=False)
    if report["package"]:
        console.print(f"package: {e(report['package']['directory'])}", highlight=False)
    for line in track_lines(report.get("regulated_track") or {}):
        console.print(e(line), highlight=False)
