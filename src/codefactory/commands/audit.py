"""Audit commands: `audit verify`."""

from __future__ import annotations

import typer

from codefactory.commands.common import JsonOption, build, console, fail, print_json

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add these commands to the root app."""
    app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(as_json: JsonOption = False) -> None:
    """Recompute the hash chain; names the first event altered, removed or reordered."""
    report = build().audit.verify()
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
