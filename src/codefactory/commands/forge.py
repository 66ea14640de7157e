"""`codefactory forge check-protection`: would the forge let the agent's change merge
without review?"""

from __future__ import annotations

from typing import Annotated

import typer

from codefactory.commands.common import JsonOption, build, console, fail, print_json, state
from codefactory.terminal import shown

forge_app = typer.Typer(help="The forge where reviewers work (GitHub, GitLab, …).")

CHECKED_EVENT = "forge-protection-checked"  # ForgeProtectionChecked.NAME, loaded when run


def register(app: typer.Typer) -> None:
    """Add these commands to the root app."""
    app.add_typer(forge_app, name="forge")


@forge_app.command("check-protection")
def check_protection_command(
    repository: Annotated[
        list[str] | None,
        typer.Option(
            "--repository",
            help="A forge repository (owner/name, group/project) or canonical id; "
            "repeatable. Default: every repository bound in triggers.repositories.",
            show_default=False,
        ),
    ] = None,
    branch: Annotated[
        str | None,
        typer.Option(help="The branch changes merge into (default: forge.base_branch)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Read each repository's branch protection from the forge and list what would let the
    agent's change merge without review: an unprotected branch, no required approval, stale
    approvals kept, administrators bypassing, the gate's status not required. Exit 0 when
    nothing would, 1 when any gap, 2 on errors (the forge's named error, forge.type local).
    Each check is audited (`forge-protection-checked`)."""
    from codefactory.audit.events import ForgeProtectionChecked
    from codefactory.review.forges.build import forge_host
    from codefactory.review.forges.naming import NotPublishable, forge_repository
    from codefactory.review.protection import (
        ERROR,
        GAPS,
        Skipped,
        bound_targets,
        check_protection,
    )
    from codefactory.secret_files import SecretUnreadable
    from codefactory.triggers.caller import local_caller

    settings = state.settings
    forge = settings.forge
    if forge.type == "local":
        fail(
            "forge.type is `local`: the factory's own bare repository has no branch protection "
            "to check; set CODEFACTORY_FORGE__TYPE (github, gitlab, azure-devops, bitbucket)",
            code=2,
        )
    if repository:
        try:
            names = [forge_repository(name, forge.type) for name in repository]
        except NotPublishable as err:
            fail(str(err), code=2)
        skipped: list[Skipped] = []
    else:
        targets = bound_targets(settings.triggers.repository_ids().values(), forge.type)
        names, skipped = list(targets.names), list(targets.skipped)
    if not names:
        fail("no repository to check: pass --repository or bind one (triggers.repositories)", 2)
    try:
        host = forge_host(settings)
    except SecretUnreadable as err:
        fail(f"the forge cannot be reached: {err}", code=2)
    assert host is not None  # the type is not local
    target = branch or forge.base_branch
    try:
        checks = [
            check_protection(host, name, target, status_context=forge.status_context)
            for name in names
        ]
    finally:
        close = getattr(host, "close", None)  # the adapters' HTTP client (not in the port)
        if callable(close):
            close()
    factory = build()
    caller = local_caller()
    with factory.store.atomic() as tx:
        for check in checks:
            tx.append(ForgeProtectionChecked(actor="cli",
                                             caller=f"{caller.kind.value}:{caller.identity}",
                                             **check.audit_data(forge.type)))  # fmt: skip
    outcomes = {check.outcome for check in checks}
    code = 2 if ERROR in outcomes else 1 if GAPS in outcomes else 0
    if as_json:
        print_json(
            {
                "forge": forge.type,
                "branch": target,
                "status_context": forge.status_context,
                "checks": [check.audit_data(forge.type) for check in checks],
                "skipped": [{"repository": s.repository, "reason": s.reason} for s in skipped],
            }
        )
        raise typer.Exit(code)
    for check in checks:
        where = shown(f"{check.repository} {check.branch}")
        if check.outcome == ERROR:
            console.print(f"[red]error[/] {where}: {shown(check.error)}", highlight=False)
        elif check.gaps:
            console.print(f"[yellow]gaps[/]  {where}", highlight=False)
            for gap in check.gaps:
                console.print(f"  - {shown(gap)}", highlight=False)
        else:
            console.print(f"[green]ok[/]    {where}: no merge without review", highlight=False)
    for skip in skipped:
        console.print(f"[dim]skipped {shown(skip.repository)}: {shown(skip.reason)}[/]")
    raise typer.Exit(code)
