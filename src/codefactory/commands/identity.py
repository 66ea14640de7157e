"""Identity commands: `agents create|list|show|activate|suspend|revoke`, and `identity jwks`,
`identity allowed-signers`, `identity rotate-key`, `identity revoke-token`,
`identity statement`.

Governance acts (activate, suspend, revoke, rotate-key, revoke-token) need a statement signed
with the person's own SSH key (`--as P --key K`, or `--statement`/`--signature`) by someone
holding the `security` role (`identity.governance`); a bare `--as` is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from codefactory.commands.common import JsonOption, build, console, fail, print_json
from codefactory.commands.signed import (
    KeyOption,
    PersonOption,
    SignatureOption,
    StatementOption,
    authorize_governance,
)
from codefactory.terminal import shown

if TYPE_CHECKING:
    from codefactory.identity.agents import AgentIdentity

agents_app = typer.Typer(help="Registered agents: non-human identities.", no_args_is_help=True)
identity_app = typer.Typer(help="The issuer's keys and what it publishes.", no_args_is_help=True)

ReasonOption = Annotated[str, typer.Option(help="Why (recorded in the audit log).")]


def register(app: typer.Typer) -> None:
    """Add these commands to the root app."""
    app.add_typer(agents_app, name="agents")
    app.add_typer(identity_app, name="identity")


def _as_dict(agent: AgentIdentity) -> dict[str, Any]:
    return {
        "id": agent.id,
        "display_name": agent.display_name,
        "issuer": agent.issuer,
        "owner": agent.owner,
        "engines": list(agent.engines),
        "status": agent.status.value,
        "status_reason": agent.status_reason,
        "email": agent.email,
        "ssh_public_key": agent.ssh_public_key,
        "created_at": agent.created_at.isoformat() if agent.created_at else None,
        "updated_at": agent.updated_at.isoformat() if agent.updated_at else None,
    }


def _show(agent: AgentIdentity, as_json: bool) -> None:
    if as_json:
        print_json(_as_dict(agent))
        return
    for key, value in _as_dict(agent).items():
        console.print(shown(f"{key + ':':<15}{value}"), highlight=False)


@agents_app.command("create")
def agents_create(
    agent_id: Annotated[str, typer.Argument(help="agent:<name>")],
    owner: Annotated[str, typer.Option(help="The accountable human.")],
    person: PersonOption,
    key: KeyOption = None,
    name: Annotated[str, typer.Option(help="Display name (commit author).")] = "",
    engine: Annotated[
        list[str] | None, typer.Option(help="An engine it may run (repeat; globs allowed).")
    ] = None,
    pending: Annotated[
        bool, typer.Option(help="Leave it `created` until activated (no signature needed).")
    ] = False,
    statement: StatementOption = None,
    signature: SignatureOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register an agent and make its signing key. Made active at once, it needs an
    `agent-activate` statement signed by a person with the `security` role; `--pending`
    leaves it unable to act until such an activation."""
    from codefactory.identity.errors import IdentityError
    from codefactory.identity.statements import StatementRefused, refuse_non_human

    factory = build()
    if pending:
        try:  # a claim, not a proof: recorded as such; the agent cannot act
            actor = f"unauthenticated:{refuse_non_human(person)}"
        except StatementRefused as err:
            fail(str(err))
    else:
        signed = (key, statement, signature)
        verified = authorize_governance(factory, "agent-activate", agent_id, person, "", *signed)
        actor = verified.person.actor
    try:
        agent = factory.identity.agents.create(
            agent_id,
            display_name=name or agent_id,
            owner=owner,
            engines=engine or ["recipe:*"],
            actor=actor,
            active=not pending,
            statement=None if pending else verified,
        )
    except IdentityError as err:
        fail(str(err))
    _show(agent, as_json)


@agents_app.command("list")
def agents_list(as_json: JsonOption = False) -> None:
    """Every registered agent."""
    found = build().identity.agents.search()
    if as_json:
        print_json([_as_dict(agent) for agent in found])
        return
    table = Table("agent", "status", "owner", "issuer", "engines", "name")
    for agent in found:
        table.add_row(
            *(
                shown(cell)
                for cell in (
                    agent.id,
                    agent.status.value,
                    agent.owner,
                    agent.issuer,
                    " ".join(agent.engines),
                    agent.display_name,
                )
            )
        )
    console.print(table)


@agents_app.command("show")
def agents_show(agent_id: str, as_json: JsonOption = False) -> None:
    """One agent: who owns it, what it may run, its status and its public key."""
    agent = build().identity.agents.get(agent_id)
    if agent is None:
        fail(f"no agent with id {agent_id!r}")
    _show(agent, as_json)


def _move(
    agent_id: str,
    status: str,
    person: str,
    reason: str,
    signed: tuple[Path | None, Path | None, Path | None],
    as_json: bool,
) -> None:
    from codefactory.identity.agents import AgentStatus
    from codefactory.identity.errors import IdentityError

    factory = build()
    action = {"active": "agent-activate", "suspended": "agent-suspend", "revoked": "agent-revoke"}
    verified = authorize_governance(factory, action[status], agent_id, person, reason, *signed)
    try:
        agent = factory.identity.agents.set_status(
            agent_id,
            AgentStatus(status),
            actor=verified.person.actor,
            reason=str(verified.fields.get("reason", "")),
            statement=verified,  # kept in the event: the status counts only when signed
        )
    except IdentityError as err:
        fail(str(err))
    _show(agent, as_json)


@agents_app.command("activate")
def agents_activate(
    agent_id: str,
    person: PersonOption,
    key: KeyOption = None,
    reason: ReasonOption = "",
    statement: StatementOption = None,
    signature: SignatureOption = None,
    as_json: JsonOption = False,
) -> None:
    """Let a created or suspended agent act (signed; role `security`)."""
    _move(agent_id, "active", person, reason, (key, statement, signature), as_json)


@agents_app.command("suspend")
def agents_suspend(
    agent_id: str,
    person: PersonOption,
    key: KeyOption = None,
    reason: ReasonOption = "",
    statement: StatementOption = None,
    signature: SignatureOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stop an agent from acting until it is activated again; runs in flight stop too
    (signed; role `security`)."""
    _move(agent_id, "suspended", person, reason, (key, statement, signature), as_json)


@agents_app.command("revoke")
def agents_revoke(
    agent_id: str,
    person: PersonOption,
    key: KeyOption = None,
    reason: ReasonOption = "",
    statement: StatementOption = None,
    signature: SignatureOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke an agent for good; its key stops verifying commits made afterwards (signed;
    role `security`)."""
    _move(agent_id, "revoked", person, reason, (key, statement, signature), as_json)


def _default_signers_path() -> Path:
    from codefactory.commands.common import state
    from codefactory.identity.services import keys_dir

    return keys_dir(state.settings) / "allowed_signers"


@identity_app.command("jwks")
def identity_jwks(
    output: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
) -> None:
    """The JWK set (RFC 7517) of the issuer's keys and the agents' keys, as served at
    `/.well-known/jwks.json`."""
    import json

    from codefactory.identity.published import jwks

    factory = build()
    identity = factory.identity
    document = jwks(
        identity.issuer.name,
        identity.issuer.public_keys(),
        identity.agents.search(),
        trust=identity.trust,
    )
    if output is None:
        print_json(document)
    else:
        output.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        console.print(f"wrote {shown(str(output))}", highlight=False)


@identity_app.command("allowed-signers")
def identity_allowed_signers(
    output: Annotated[
        Path | None, typer.Option(help="Where to write it (default: <data>/keys/allowed_signers).")
    ] = None,
) -> None:
    """Write a git `allowed_signers` file of every agent's key, so plain `git verify-commit`
    checks the factory's commits."""
    from codefactory.identity.published import allowed_signers

    target = output or _default_signers_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    identity = build().identity
    target.write_text(allowed_signers(identity.agents.search(), trust=identity.trust))
    console.print(f"wrote {shown(str(target))}", highlight=False)
    console.print(
        shown(f"verify with: git -c gpg.ssh.allowedSignersFile={target} verify-commit <commit>"),
        highlight=False,
    )


@identity_app.command("rotate-key")
def identity_rotate_key(
    person: PersonOption,
    key: KeyOption = None,
    reason: ReasonOption = "",
    statement: StatementOption = None,
    signature: SignatureOption = None,
) -> None:
    """Start signing tokens and checkpoints with a new issuer key; old keys stay published
    (signed; role `security`)."""
    from codefactory.audit.events import IssuerKeyRotated

    factory = build()
    target = factory.identity.issuer.name
    verified = authorize_governance(
        factory, "issuer-key-rotate", target, person, reason, key, statement, signature
    )
    retired = factory.identity.issuer.public_keys()[0]
    new_key = factory.identity.issuer.rotate()
    factory.audit.append(
        IssuerKeyRotated(
            actor=verified.person.actor,
            issuer=target,
            kid=new_key.kid,
            retired=retired.kid,
            statement_digest=verified.digest,
        )
    )
    console.print(
        f"issuer key {shown(new_key.kid)} is current; {shown(retired.kid)} retired",
        highlight=False,
    )


@identity_app.command("revoke-token")
def identity_revoke_token(
    jti: Annotated[str, typer.Argument(help="The token's jti (see `audit explain RUN`).")],
    person: PersonOption,
    key: KeyOption = None,
    reason: ReasonOption = "revoked by an operator",
    statement: StatementOption = None,
    signature: SignatureOption = None,
) -> None:
    """Revoke a run's delegation token: every component acting for the run refuses it
    (signed; role `security`)."""
    from codefactory.identity.errors import IdentityError

    factory = build()
    verified = authorize_governance(
        factory, "token-revoke", jti, person, reason, key, statement, signature
    )
    try:
        run_id = factory.identity.delegation.revoke(
            jti, actor=verified.person.actor, reason=str(verified.fields.get("reason", ""))
        )
    except IdentityError as err:
        fail(str(err))
    console.print(f"token {shown(jti)} of run {shown(run_id)} revoked", highlight=False)


@identity_app.command("sign-waiver")
def identity_sign_waiver(
    check: Annotated[str, typer.Option(help="The check (`sast`, `sca`, …) or `*`.")],
    rule: Annotated[str, typer.Option(help="The rule id (`B602`) or `*`.")],
    reason: Annotated[str, typer.Option(help="Why the exception is acceptable.")],
    person: PersonOption,
    key: KeyOption = None,
    path: Annotated[str, typer.Option(help="A glob over the finding's path.")] = "*",
    fingerprint: Annotated[str, typer.Option(help="Only this finding.")] = "",
    expires: Annotated[str, typer.Option(help="Last day it applies (YYYY-MM-DD).")] = "",
) -> None:
    """Sign a waiver as its approver (role `security`) and print it as JSON for
    `verify.waivers`; the factory applies only waivers whose signature verifies."""
    from datetime import UTC, date, datetime

    from pydantic import ValidationError

    from codefactory.identity.errors import IdentityError
    from codefactory.identity.ssh_signatures import GOVERNANCE_NAMESPACE, SshSignatureError, sign
    from codefactory.identity.statements import refuse_non_human, rfc3339
    from codefactory.runs.waiver_log import waiver_statement
    from codefactory.verify.settings import Waiver

    if key is None:
        fail("sign with your SSH key: --key ~/.ssh/id_ed25519 (a key the directory lists)")
    try:
        at = datetime.now(UTC).replace(microsecond=0)
        waiver = Waiver(
            check=check,
            rule=rule,
            path=path,
            fingerprint=fingerprint,
            approver=refuse_non_human(person),
            reason=reason,
            expires=date.fromisoformat(expires) if expires else None,
            signed_at=rfc3339(at),
        )
        signature = sign(waiver_statement(waiver, at=at), key.expanduser(), GOVERNANCE_NAMESPACE)
    except (ValidationError, ValueError, IdentityError, SshSignatureError) as err:
        fail(str(err))
    print_json(waiver.model_copy(update={"signature": signature}).model_dump(mode="json"))


@identity_app.command("statement")
def identity_statement(
    action: Annotated[
        str,
        typer.Argument(
            help="agent-activate, agent-suspend, agent-revoke, token-revoke, "
            "issuer-key-rotate, policy-propose, policy-approve, registry-propose, "
            "registry-approve."
        ),
    ],
    target: Annotated[
        str, typer.Argument(help="The agent id, the token's jti, the issuer, or a digest.")
    ],
    person: PersonOption,
    reason: ReasonOption = "",
) -> None:
    """Print the governance statement to sign elsewhere (`ssh-keygen -Y sign -n
    codefactory-governance`); submit it with `--statement` and `--signature`."""
    import sys

    from codefactory.identity.errors import IdentityError
    from codefactory.identity.governance import GovernanceAction
    from codefactory.identity.statements import governance_statement

    if action not in set(GovernanceAction):
        fail(f"unknown action {action}")
    try:
        body = governance_statement(action=action, target=target, person=person, reason=reason)
    except IdentityError as err:
        fail(str(err))
    sys.stdout.buffer.write(body)
    sys.stdout.flush()


@identity_app.command("trust-export")
def identity_trust_export(
    output: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
) -> None:
    """Print the trust file (TOML) pinning the current issuer, checkpoint and agent public keys:
    review it, install it outside the data folder and set `identity.trust_file` (docs/keys.md).
    With `identity.signer = "pkcs11"` it makes the issuer's and default agent's keys in the
    token when they are missing."""
    import sys

    from codefactory.audit.sql import SqlAuditLog
    from codefactory.commands.common import state
    from codefactory.config import prepare_data_dir
    from codefactory.identity.errors import IdentityError
    from codefactory.identity.trust import render_trust
    from codefactory.identity.trust_export import export_trust
    from codefactory.store.db import open_engine

    settings = state.settings
    prepare_data_dir(settings.data_dir)
    try:
        origin = SqlAuditLog(open_engine(settings.database_url)).origin
        text = render_trust(export_trust(settings, origin=origin))
    except IdentityError as err:
        fail(str(err))
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        console.print(f"wrote {shown(str(output))}: set identity.trust_file to it", highlight=False)
