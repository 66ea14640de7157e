"""Policy commands: `policy check` asks one question, `policy validate` checks the schema,
`policy status|propose|approve` change the policy in force under four eyes.

The factory enforces the approved policy (`runs.policy_log`): a configured file that differs
from it changes nothing until one `policy-admin` proposes it and another approves it, each
with a statement signed with their own SSH key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from codefactory.commands.common import (
    JsonOption,
    build,
    console,
    errors,
    fail,
    print_json,
    state,
)
from codefactory.commands.signed import (
    KeyOption,
    PersonOption,
    SignatureOption,
    StatementOption,
    authorize_governance,
    governance_desk,
)
from codefactory.terminal import shown

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
    """The policies of `files`, else the policy in force (saying so when the configured file
    waits for approval)."""
    from codefactory.policy.cedar import CedarPolicy
    from codefactory.policy.errors import PolicyInvalid
    from codefactory.runs.policy_log import active_policy

    try:
        if files:
            return CedarPolicy.from_files(*files)
        factory = build()
        verifier = governance_desk(factory).verifier
        policy, governed = active_policy(state.settings.policy_file, factory.audit, verifier)
    except PolicyInvalid as err:
        fail(str(err))
    if governed.pending:
        errors.print(f"[yellow]note:[/] {shown(governed.notice())}", highlight=False)
    return policy


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
        console.print(
            f"{verdict} {shown(str(request.principal))} {shown(action)} {shown(str(resource))}",
            highlight=False,
        )
        for policy_id, reason in zip(decision.policy_ids, decision.reasons, strict=False):
            console.print(f"  {shown(policy_id)}: {shown(reason)}", highlight=False)
        if not decision.policy_ids:
            console.print(f"  {shown(decision.summary)}", highlight=False)
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


@policy_app.command("status")
def policy_status(as_json: JsonOption = False) -> None:
    """The policy in force (its digest), the configured file's digest, and the proposals
    waiting for a second approver."""
    from codefactory.runs.policy_log import KIND, active_policy

    factory = build()
    verifier = governance_desk(factory).verifier
    _, governed = active_policy(state.settings.policy_file, factory.audit, verifier)
    print_governed(governed, pending_proposals(factory, KIND), as_json)


@policy_app.command("propose")
def policy_propose(
    person: PersonOption,
    file: Annotated[
        Path | None,
        typer.Argument(help="Policy file or folder; default: the configured policy."),
    ] = None,
    key: KeyOption = None,
    reason: Annotated[str, typer.Option(help="Why (part of the signed statement).")] = "",
    statement: StatementOption = None,
    signature: SignatureOption = None,
) -> None:
    """Propose a policy (signed; role `policy-admin`); it takes effect when a second
    policy-admin approves its digest."""
    from codefactory.policy.cedar import CedarPolicy
    from codefactory.policy.errors import PolicyInvalid
    from codefactory.runs.policy_log import KIND, configured_policy_path

    path = file or configured_policy_path(state.settings.policy_file)
    try:
        text = CedarPolicy.from_file(path).text
    except PolicyInvalid as err:
        fail(str(err))
    digest = propose_governed(KIND, text, str(path), person, key, reason, statement, signature)
    announce_proposal("policy", digest, path, role="policy-admin", app="policy")


@policy_app.command("approve")
def policy_approve(
    digest: Annotated[str, typer.Argument(help="The proposal's digest (`sha256:…`).")],
    person: PersonOption,
    key: KeyOption = None,
    reason: Annotated[str, typer.Option(help="Why (part of the signed statement).")] = "",
    statement: StatementOption = None,
    signature: SignatureOption = None,
) -> None:
    """Approve a proposed policy (signed; role `policy-admin`; not its proposer): it is the
    policy in force from the next command or run on."""
    from codefactory.runs.policy_log import KIND

    approve_governed(KIND, digest, person, key, reason, statement, signature)
    console.print(f"policy {shown(digest)} is in force", highlight=False)


def pending_proposals(factory: Any, kind: str) -> list[dict[str, str]]:
    """Proposals of `kind` newer than the content in force whose signed statement verifies
    (`GovernedFile.pending`)."""
    from codefactory.identity.four_eyes import GovernedFile

    ledger = GovernedFile(kind, factory.audit, governance_desk(factory).verifier)
    return [
        {
            "digest": proposal.digest,
            "proposer": proposal.proposer,
            "source": str(proposal.record.data.get("source", "")),
            "at": proposal.record.at.isoformat(),
        }
        for proposal in ledger.pending()
    ]


def print_governed(governed: Any, proposals: list[dict[str, str]], as_json: bool) -> None:
    """`status` output for a governed file (policy or registry)."""
    if as_json:
        print_json(
            {
                "active_digest": governed.active_digest,
                "configured_digest": governed.configured_digest,
                "configured_source": governed.source,
                "pending": governed.pending,
                "proposals": proposals,
                "ignored": list(governed.ignored),
            }
        )
        return
    console.print(f"in force:   {governed.active_digest}", highlight=False)
    console.print(
        f"configured: {governed.configured_digest} ({shown(governed.source)})", highlight=False
    )
    if governed.pending:
        console.print(f"[yellow]{shown(governed.notice())}[/]", highlight=False)
    for ignored in governed.ignored:
        console.print(f"[red]{shown(ignored)}[/]", highlight=False)
    for proposal in proposals:
        console.print(
            f"proposed:   {proposal['digest']} by {shown(proposal['proposer'])} at "
            f"{proposal['at']} ({shown(proposal['source'])})",
            highlight=False,
        )


def propose_governed(
    kind: str,
    text: str,
    source: str,
    person: str,
    key: Path | None,
    reason: str,
    statement: Path | None,
    signature: Path | None,
) -> str:
    """Sign (or read) a `<kind>-propose` statement over the content's digest, check it and
    record the proposal; exits with the reason when refused."""
    from codefactory.identity.four_eyes import FourEyesRefused, GovernedFile, content_digest

    digest = content_digest(text)
    factory = build()
    verified = authorize_governance(
        factory, f"{kind}-propose", digest, person, reason, key, statement, signature
    )
    try:
        ledger = GovernedFile(kind, factory.audit, governance_desk(factory).verifier)
        return ledger.propose(text, source=source, statement=verified)
    except FourEyesRefused as err:
        _refuse(factory, verified, f"{kind}-propose", str(err))


def announce_proposal(noun: str, digest: str, path: Path, *, role: str, app: str) -> None:
    """Print that the `noun` content of `path` is proposed as `digest` and the command a
    second holder of `role` runs to approve it (`codefactory <app> approve <digest>`)."""
    console.print(
        f"proposed {noun} {digest} from {shown(str(path))}; a second {role} approves "
        f"with: codefactory {app} approve {digest} --as THEM --key THEIR_KEY",
        highlight=False,
    )


def approve_governed(
    kind: str,
    digest: str,
    person: str,
    key: Path | None,
    reason: str,
    statement: Path | None,
    signature: Path | None,
) -> None:
    """Sign (or read) a `<kind>-approve` statement over `digest`, check it (four eyes: not
    the proposer) and make the proposal the content in force."""
    from codefactory.identity.four_eyes import FourEyesRefused, GovernedFile

    factory = build()
    verified = authorize_governance(
        factory, f"{kind}-approve", digest, person, reason, key, statement, signature
    )
    try:
        ledger = GovernedFile(kind, factory.audit, governance_desk(factory).verifier)
        ledger.approve(digest, statement=verified)
    except FourEyesRefused as err:
        _refuse(factory, verified, f"{kind}-approve", str(err))


def _refuse(factory: Any, verified: Any, action: str, reason: str) -> NoReturn:
    from codefactory.identity.governance import GovernanceAction

    governance_desk(factory).refuse(verified, action=GovernanceAction(action), reason=reason)
    fail(reason)
