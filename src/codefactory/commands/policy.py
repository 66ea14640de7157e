"""Policy commands: `policy check` asks one question, `policy validate` checks the schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from codefactory.commands.common import JsonOption, console, fail, print_json, state

policy_app = typer.Typer(help="Cedar policies: test a request, validate the files.")

PolicyFiles = Annotated[
    list[Path] | None,
    typer.Option(
        "--policy",
        help="Policy file or folder (repeatable); default: the configured policy.",
        show_default=False,
    ),
]


def register(app: typer.Typer) -> None:
    """Add these commands to the root app."""
    app.add_typer(policy_app, name="policy")


def _load(files: list[Path] | None) -> Any:
    from codefactory.policy.cedar import CedarPolicy, default_policy_path
    from codefactory.policy.errors import PolicyInvalid

    paths = files or [state.settings.policy_file or default_policy_path()]
    try:
        return CedarPolicy.from_files(*paths)
    except PolicyInvalid as err:
        fail(str(err))


@policy_app.command("check")
def policy_check(
    action: Annotated[str, typer.Option(help="Action, e.g. fix_lint, open_pr, modify_ci.")],
    source: Annotated[str, typer.Option(help="The trigger source (the principal).")] = "cli",
    repository: Annotated[str, typer.Option(help="Repository name.")] = "repository",
    path: Annotated[
        str | None, typer.Option(help="A touched path: the resource is this Path.")
    ] = None,
    context: Annotated[str, typer.Option(help="Context as a JSON object.")] = "{}",
    policy: PolicyFiles = None,
    as_json: JsonOption = False,
) -> None:
    """Decide one request and print the decision with the policies that decided it.

    Exits 0 when allowed, 1 when denied.
    """
    from codefactory.policy.paths import path_entities, path_ref
    from codefactory.policy.port import AuthorizationRequest, EntityRef

    try:
        given = json.loads(context)
    except ValueError as err:
        fail(f"--context is not JSON: {err}")
    if not isinstance(given, dict):
        fail("--context must be a JSON object")
    resource = path_ref(path) if path else EntityRef(type="Repository", id=repository)
    request = AuthorizationRequest(
        principal=EntityRef(type="TriggerSource", id=source),
        action=action,
        resource=resource,
        context={"sponsor": "", "labels": [], "source": source, **given},
    )
    (decision,) = _load(policy).authorize_batch(
        [request], path_entities(repository, [path] if path else [])
    )
    if as_json:
        print_json(
            {
                "allowed": decision.allowed,
                "principal": str(request.principal),
                "action": action,
                "resource": str(resource),
                "policy_ids": list(decision.policy_ids),
                "reasons": list(decision.reasons),
                "errors": list(decision.errors),
            }
        )
    else:
        verdict = "[green]ALLOW[/]" if decision.allowed else "[red]DENY[/]"
        console.print(f"{verdict} {request.principal} {action} {resource}", highlight=False)
        for policy_id, reason in zip(decision.policy_ids, decision.reasons, strict=False):
            console.print(f"  {policy_id}: {reason}", highlight=False)
        if not decision.policy_ids:
            console.print(f"  {decision.summary}", highlight=False)
    if not decision.allowed:
        raise typer.Exit(1)


@policy_app.command("validate")
def policy_validate(policy: PolicyFiles = None, as_json: JsonOption = False) -> None:
    """Type-check policies against the shipped Cedar schema (`schema.cedarschema`)."""
    from codefactory.policy.cedar import schema_path

    loaded = _load(policy)
    problems = loaded.validate(schema_path().read_text(encoding="utf-8"))
    if as_json:
        print_json({"ok": not problems, "policies": list(loaded.policy_ids), "errors": problems})
    elif not problems:
        console.print(f"{len(loaded.policy_ids)} policies conform to the schema", highlight=False)
    if problems:
        fail("; ".join(problems))
