"""`codefactory verify`: the gate on a working tree outside any run (issue 6).

Exit code 0 only when nothing blocks; 1 when a finding blocks (or a check could not run);
2 when the gate itself could not start (no repository, no sandbox).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from codefactory.commands.common import JsonOption, build, console, fail, print_json, progress
from codefactory.terminal import shown

if TYPE_CHECKING:
    from codefactory.verify.worktree_gate import TreeVerdict

BLOCKED, COULD_NOT_START = 1, 2


def register(app: typer.Typer) -> None:
    """Add these commands to the root app."""
    app.command("verify")(verify)


def verify(
    repo: Annotated[Path, typer.Option(help="The git working tree to judge.")] = Path("."),
    base: Annotated[str, typer.Option(help="The revision the changes are judged against.")] = (
        "HEAD"
    ),
    evidence: Annotated[
        Path | None, typer.Option(help="Write each check's SARIF or JUnit evidence here.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run the gate (diff policy, lint, secrets, SAST, SCA, tests) on the working tree's
    changes against `--base`, inside the sandbox with no network; only what the changes
    introduced blocks."""
    from codefactory.audit.events import FindingWaived
    from codefactory.sandbox.errors import SandboxError
    from codefactory.sandbox.setup import dependency_files
    from codefactory.verify.compose import worktree_gate
    from codefactory.verify.errors import VerifyError
    from codefactory.verify.worktree_gate import verify_working_tree

    factory = build()
    loop = factory.loop
    gate = worktree_gate(factory.gate)
    try:
        with progress("verifying", quiet=as_json):
            verdict = verify_working_tree(
                gate=gate,
                sandbox=loop.sandbox,
                setup=loop.setup,
                dependency_files=dependency_files,
                repo=repo,
                base=base,
                mirrors=factory.mirrors,
            )
    except (SandboxError, VerifyError, OSError) as err:
        fail(f"the gate could not run: {err}", code=COULD_NOT_START)
    with factory.store.atomic() as tx:  # a waiver is an audited fact, in a run or not
        for use in gate.waivers_applied(verdict.results):
            tx.append(FindingWaived(actor=use.actor, **use.as_event()))
    if evidence is not None:
        _write_evidence(evidence, verdict)
    if as_json:
        print_json(_as_dict(verdict))
    else:
        _print(verdict)
    if not verdict.passed:
        raise typer.Exit(BLOCKED)


def _as_dict(verdict: TreeVerdict) -> dict[str, Any]:
    return {
        "passed": verdict.passed,
        "repository": str(verdict.repository),
        "base_commit": verdict.base_commit,
        "changed": list(verdict.change.paths),
        "not_judged": [asdict(skipped) for skipped in verdict.skipped],
        "checks": [
            {
                "check": r.check,
                "passed": r.passed,
                "skipped": r.skipped,
                "summary": r.summary,
                "evidence_name": r.evidence_name,
                "findings": [{**asdict(f), "severity": f.severity.value} for f in r.findings],
            }
            for r in verdict.results
        ],
    }


def _print(verdict: TreeVerdict) -> None:
    table = Table("check", "result", "new", "pre-existing", "fixed", "blocking", "summary")
    for r in verdict.results:
        counts = {s: sum(1 for f in r.findings if f.baseline_state == s) for s in _STATES}
        outcome = (
            "[yellow]skipped[/]"
            if r.skipped
            else ("[green]pass[/]" if r.passed else "[bold red]FAIL[/]")
        )
        blocking = str(sum(1 for f in r.findings if f.blocking))
        table.add_row(
            shown(r.check), outcome, *(str(counts[s]) for s in _STATES), blocking, shown(r.summary)
        )
    console.print(
        f"{shown(verdict.repository)}: {len(verdict.change.files)} changed file(s) "
        f"against {verdict.base_commit[:12]}",
        highlight=False,
    )
    console.print(table)
    for skipped in verdict.skipped:
        console.print(
            f"  not judged: {shown(skipped.path)} ({skipped.kind}): {shown(skipped.reason)}",
            highlight=False,
        )
    for f in (f for r in verdict.results for f in r.findings if f.blocking):
        where = f"{f.path}:{f.line}" if f.line else f.path or "-"
        console.print(
            f"  [red]blocking[/] {shown(f'{f.check} {f.rule} {where}: {f.message}')}",
            highlight=False,
        )
    console.print("nothing blocks" if verdict.passed else "[bold red]the change is blocked[/]")


_STATES = ("new", "unchanged", "absent")


def _write_evidence(folder: Path, verdict: TreeVerdict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for r in verdict.results:
        if r.evidence_name:
            (folder / Path(r.evidence_name).name).write_text(r.evidence, encoding="utf-8")
