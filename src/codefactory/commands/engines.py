"""Engine registry commands: `engines list`, `engines show NAME`, `engines validate [PATH]`,
`engines check NAME` read the registry file only (no database), so they stay fast;
`engines monitor` also reads the runs. The registry in force is the approved one (four
eyes): `engines status`, `engines propose [FILE]`, `engines approve DIGEST`."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from codefactory.commands.common import JsonOption, console, fail, print_json, state
from codefactory.commands.signed import KeyOption, PersonOption, SignatureOption, StatementOption
from codefactory.terminal import printable, shown

if TYPE_CHECKING:
    from codefactory.engines.registry import EngineRegistry
    from codefactory.engines.registry_model import EngineEntry

engines_app = typer.Typer(
    help="The engine registry: which coding engines are cleared, for what.", no_args_is_help=True
)

AtOption = Annotated[
    str | None,
    typer.Option(
        "--at", help="Statuses as of this date (YYYY-MM-DD); default today.", show_default=False
    ),
]

SUMMARY = (
    "name",
    "engine_version",
    "model",
    "model_version",
    "provider",
    "status",
    "materiality",
    "owner",
    "validator",
    "next_review",
    "change_kinds",
)


def register(app: typer.Typer) -> None:
    """Add these commands to the root app."""
    app.add_typer(engines_app, name="engines")


def _load(path: Path | None = None) -> EngineRegistry:
    from codefactory.engines.registry import RegistryInvalid, load_registry

    try:
        return load_registry(path or state.settings.engines.registry)
    except RegistryInvalid as err:
        fail("; ".join(err.problems))


def _moment(at: str | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    try:
        return datetime.combine(date.fromisoformat(at), time(12), tzinfo=UTC)
    except ValueError:
        fail(f"--at {at!r} is not a date (YYYY-MM-DD)")


def _as_dict(entry: EngineEntry, now: datetime) -> dict[str, Any]:
    from codefactory.engines.registry import entry_status, status_reason
    from codefactory.engines.registry_audit import canonical_entry

    data = canonical_entry(entry)
    declared = data.pop("status")
    return {
        "name": data.pop("name"),
        "status": entry_status(entry, now).value,
        "status_detail": status_reason(entry, now),
        "declared_status": declared,
        **data,
    }


@engines_app.command("list")
def engines_list(at: AtOption = None, as_json: JsonOption = False) -> None:
    """Every engine in the registry with its status on the day."""
    registry, now = _load(), _moment(at)
    rows = [_as_dict(entry, now) for entry in registry]
    if as_json:
        print_json([{key: row[key] for key in (*SUMMARY, "status_detail")} for row in rows])
        return
    table = Table("engine", "version", "model", "status", "tier", "kinds", "next review")
    for row in rows:
        model = f"{row['model']} {row['model_version']}".strip() or "-"
        colour = "green" if row["status"] == "cleared" else "yellow"
        table.add_row(
            shown(row["name"]),
            shown(row["engine_version"]),
            shown(model),
            f"[{colour}]{shown(row['status'])}[/]",
            shown(row["materiality"]),
            shown(", ".join(row["change_kinds"])),
            shown(str(row["next_review"])),
        )
    console.print(table)


@engines_app.command("show")
def engines_show(
    name: Annotated[str, typer.Argument(help="Registry name, e.g. agent:pydantic-ai.")],
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """One entry in full, with its status on the day."""
    registry = _load()
    entry = registry.get(name)
    if entry is None:
        known = ", ".join(e.name for e in registry)
        fail(f"engine {name} is not in the registry {registry.source} (it has: {known})")
    data = _as_dict(entry, _moment(at))
    if as_json:
        print_json(data)
        return
    for key, value in data.items():
        console.print(shown(f"{key + ':':<26}{value}"), highlight=False, soft_wrap=True)


@engines_app.command("validate")
def engines_validate(
    path: Annotated[
        Path | None,
        typer.Argument(help="Registry file; default: the configured one.", show_default=False),
    ] = None,
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check a registry file: its schema, then the rules (independent validator, dates,
    evidence, prices, budgets, tools). Exits 0 when valid, 1 listing every problem."""
    from codefactory.engines.registry import (
        RegistryInvalid,
        default_registry_path,
        load_registry,
    )
    from codefactory.engines.registry_checks import registry_problems

    named = str(path or state.settings.engines.registry or default_registry_path())
    try:
        registry = load_registry(Path(named))
        problems = [
            f"{named}: {problem}"
            for problem in registry_problems(registry, today=_moment(at).date())
        ]
        count = len(registry)
    except RegistryInvalid as err:
        problems, count = list(err.problems), 0
    if as_json:
        print_json({"ok": not problems, "path": named, "engines": count, "problems": problems})
    elif not problems:
        console.print(shown(f"{named}: {count} engines, no problems"), highlight=False)
    else:
        for problem in problems:
            console.print(printable(problem), highlight=False, soft_wrap=True, markup=False)
    if problems:
        raise typer.Exit(1)


@engines_app.command("check")
def engines_check(
    name: Annotated[str, typer.Argument(help="Registry name, e.g. cli:codex.")],
    kind: Annotated[str, typer.Option(help="The change kind, e.g. general_change.")],
    repository: Annotated[str, typer.Option(help="The repository name.")] = "repository",
    data_class: Annotated[str, typer.Option(help="The repository's data class.")] = "internal",
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """Would a run of this kind on this repository be allowed to use this engine? Exits 0 when
    allowed, 1 when refused (with the reason a run would end `refused` with)."""
    from codefactory.domain import ChangeKind

    try:
        change_kind = ChangeKind(kind)
    except ValueError:
        fail(f"--kind {kind!r} is not one of {', '.join(ChangeKind)}")
    try:
        decision = _load().check_use(
            name, kind=change_kind, repository=repository, data_class=data_class, now=_moment(at)
        )
    except ValueError as err:
        fail(f"--data-class: {err}")
    if as_json:
        print_json(
            {
                "engine": decision.engine,
                "allowed": decision.allowed,
                "reason": decision.reason,
                "refusal": decision.refusal.value if decision.refusal else None,
                "status": decision.status.value if decision.status else None,
            }
        )
    else:
        verdict = "[green]ALLOW[/]" if decision.allowed else "[red]REFUSE[/]"
        console.print(f"{verdict} {shown(decision.reason)}", highlight=False)
    if not decision.allowed:
        raise typer.Exit(1)


@engines_app.command("monitor")
def engines_monitor(
    name: Annotated[
        str | None, typer.Argument(help="One engine; default: every engine in the registry.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Ongoing monitoring: each engine's thresholds beside what this factory's runs show
    (reviewers' acceptance rate, gate failure rate, cost per run from the gateway's records).
    Exits 1 when a threshold is breached."""
    from codefactory.commands.common import build
    from codefactory.runs.engine_monitoring import monitoring

    registry = _load()
    entries = [e for e in registry if name is None or e.name == name]
    if name is not None and not entries:
        fail(f"no engine {name!r} in the registry")
    store = build().store
    reports = [monitoring(entry, store.engine_record(entry.name)) for entry in entries]
    if as_json:
        print_json(reports)
    else:
        table = Table("engine", "runs", "metric", "value", "threshold", "state")
        for report in reports:
            runs = str(report["figures"]["runs"])
            for row in report["metrics"] or [
                {"metric": "-", "value": None, "threshold": {}, "state": "-"}
            ]:
                value = "-" if row["value"] is None else f"{row['value']:.3f}"
                bound = ", ".join(f"{k} {v}" for k, v in row["threshold"].items()) or "-"
                cells = (report["engine"], runs, row["metric"], value, bound, row["state"])
                table.add_row(*(shown(str(cell)) for cell in cells))
        console.print(table)
    if any(report["breached"] for report in reports):
        raise typer.Exit(1)


@engines_app.command("status")
def engines_status(as_json: JsonOption = False) -> None:
    """The registry in force (its digest), the configured file's digest, and the proposals
    waiting for a second approver (four eyes: `list`, `show`, `check` read the file)."""
    from codefactory.commands.common import build
    from codefactory.commands.policy import pending_proposals, print_governed
    from codefactory.commands.signed import governance_desk
    from codefactory.runs.registry_log import KIND, active_registry

    factory = build()
    verifier = governance_desk(factory).verifier
    _, governed = active_registry(state.settings.engines.registry, factory.audit, verifier)
    print_governed(governed, pending_proposals(factory, KIND), as_json)


@engines_app.command("propose")
def engines_propose(
    person: PersonOption,
    file: Annotated[
        Path | None, typer.Argument(help="Registry file; default: the configured one.")
    ] = None,
    key: KeyOption = None,
    reason: Annotated[str, typer.Option(help="Why (part of the signed statement).")] = "",
    statement: StatementOption = None,
    signature: SignatureOption = None,
) -> None:
    """Propose an engine registry (signed; role `registry-admin`); it takes effect when a
    second registry-admin approves its digest."""

    from codefactory.commands.policy import announce_proposal, propose_governed
    from codefactory.engines.registry import RegistryInvalid, parse_registry
    from codefactory.runs.registry_log import KIND, read_registry_text

    try:
        path, text = read_registry_text(file or state.settings.engines.registry)
        parse_registry(text, source=str(path))
    except RegistryInvalid as err:
        fail("; ".join(err.problems))
    digest = propose_governed(KIND, text, str(path), person, key, reason, statement, signature)
    announce_proposal("registry", digest, path, role="registry-admin", app="engines")


@engines_app.command("approve")
def engines_approve(
    digest: Annotated[str, typer.Argument(help="The proposal's digest (`sha256:…`).")],
    person: PersonOption,
    key: KeyOption = None,
    reason: Annotated[str, typer.Option(help="Why (part of the signed statement).")] = "",
    statement: StatementOption = None,
    signature: SignatureOption = None,
) -> None:
    """Approve a proposed engine registry (signed; role `registry-admin`; not its proposer):
    it is the registry in force from the next run on."""
    from codefactory.commands.policy import approve_governed
    from codefactory.runs.registry_log import KIND
    from codefactory.terminal import shown

    approve_governed(KIND, digest, person, key, reason, statement, signature)
    console.print(f"registry {shown(digest)} is in force", highlight=False)
