"""`codefactory halt`: the organisation-wide kill switch (docs/halt-and-cost-caps.md).

Raising (`halt --reason R`) and lifting (`halt --lift --reason R`) are governance acts: a
statement signed with the person's own SSH key (`--as P --key K`, or `--statement`/
`--signature` signed elsewhere), by a directory person holding the `operator` role, bound to
this factory (the issuer's name) and to the reason. The governance desk checks it (role, key,
freshness, replay) like every other governance act; `halt-raised` / `halt-lifted` record who
and why, in the same transaction as the `halts` row. A refused attempt (no proof, a bad
signature, a missing role, nothing to lift) is a `halt-refused` event and a one-line error.
`halt --status` only reads.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from codefactory.commands.common import (
    JsonOption,
    build,
    console,
    fail,
    print_json,
    read_store,
    state,
)
from codefactory.commands.signed import KeyOption, SignatureOption, StatementOption
from codefactory.terminal import shown

if TYPE_CHECKING:
    from codefactory.factory import Factory
    from codefactory.store.halts import Halt

REFUSED = "halt-refused"
"""`HaltRefused.NAME` (the event classes load only when a halt command runs)."""


def register(app: typer.Typer) -> None:
    """Add `halt` to the root app."""
    app.command("halt")(halt)


def halt(
    reason: Annotated[
        str, typer.Option("--reason", help="Why (signed, shown in every refusal, audited).")
    ] = "",
    lift: Annotated[bool, typer.Option("--lift", help="Lift the halt in force.")] = False,
    status: Annotated[
        bool, typer.Option("--status", help="Show the halt in force and the last halts.")
    ] = False,
    person: Annotated[
        str, typer.Option("--as", help="Your person id in the directory (role operator).")
    ] = "",
    key: KeyOption = None,
    statement: StatementOption = None,
    signature: SignatureOption = None,
    as_json: JsonOption = False,
) -> None:
    """Halt every run of the organisation (engine phases stop within seconds, new runs are
    refused) until lifted; signed by a person with the `operator` role."""
    if status:
        _show_status(as_json)
        return
    from codefactory.identity.governance import GovernanceAction

    action = GovernanceAction.HALT_LIFT if lift else GovernanceAction.HALT_RAISE
    factory = build()
    target = factory.settings.identity.issuer  # statements bind this factory
    if not reason.strip():
        _refuse(factory, action.value, person, "a halt needs --reason (it is signed and shown)")
    if not person:
        _refuse(factory, action.value, person, "say who you are with --as and sign with --key")
    if key is None and statement is None and signature is None:
        _refuse(
            factory,
            action.value,
            person,
            "a name alone proves nothing: sign with your SSH key (--key ~/.ssh/id_ed25519, a "
            "key the directory lists as yours), or print the statement with `codefactory "
            f"identity statement {action.value} {target} --as YOU --reason TEXT`, sign it "
            "with `ssh-keygen -Y sign -f KEY -n codefactory-governance FILE` and pass "
            "--statement FILE --signature FILE.sig",
        )
    verified = _verified(factory, action, target, person, reason, key, statement, signature)
    halt_record = _apply(factory, lift=lift, reason=reason, person=verified.person.id,
                         actor=verified.person.actor, digest=verified.digest)  # fmt: skip
    if as_json:
        print_json(_as_dict(halt_record))
        return
    if lift:
        console.print(f"halt {halt_record.id} lifted: runs may start again", highlight=False)
    else:
        console.print(f"the factory is {shown(halt_record.describe)}", highlight=False)


def _verified(
    factory: Factory,
    action: Any,
    target: str,
    person: str,
    reason: str,
    key: Path | None,
    statement: Path | None,
    signature: Path | None,
) -> Any:
    """The governance desk's verified statement, bound to `target` and `reason`; a refusal
    is audited (`governance-refused` by the desk, `halt-refused` here) and exits."""
    from codefactory.commands.signed import governance_desk, signed_statement
    from codefactory.identity.ssh_signatures import GOVERNANCE_NAMESPACE
    from codefactory.identity.statements import StatementRefused, governance_statement

    body, sig = signed_statement(
        lambda: governance_statement(
            action=action.value, target=target, person=person, reason=reason
        ),
        key=key,
        statement=statement,
        signature=signature,
        namespace=GOVERNANCE_NAMESPACE,
        how_to_sign=f"print the statement with `codefactory identity statement {action.value} "
        f"{target} --as YOU --reason TEXT`",
    )
    try:
        return governance_desk(factory).authorize(
            body, sig, action=action, target=target, claimed=person, binds={"reason": reason}
        )
    except StatementRefused as err:
        _refuse(factory, action.value, person, err.reason, digest=err.digest)


def _apply(
    factory: Factory, *, lift: bool, reason: str, person: str, actor: str, digest: str
) -> Halt:
    """Write the halt row (or its lifting) and its audit event in one transaction."""
    from codefactory.audit.errors import EventNotRecordable
    from codefactory.audit.events import HaltLifted, HaltRaised
    from codefactory.identity.governance import LEDGER
    from codefactory.store.halts import HaltConflict, HaltStore

    at = datetime.now(UTC)
    try:
        with factory.store.atomic() as tx:
            if lift:
                done = HaltStore.lift_in(tx.session, reason=reason, lifted_by=person, at=at)
                tx.append(HaltLifted( actor=actor, run_id=LEDGER, halt_id=done.id,
                         reason=reason, halted_for=done.reason,
                         statement_digest=digest))  # fmt: skip
            else:
                done = HaltStore.raise_in(tx.session, reason=reason, raised_by=person, at=at)
                tx.append(HaltRaised( actor=actor, run_id=LEDGER, halt_id=done.id,
                         reason=reason, statement_digest=digest))  # fmt: skip
    except HaltConflict as err:
        _refuse(factory, "halt-lift" if lift else "halt-raise", person, str(err), actor=actor)
    except EventNotRecordable as err:  # the act rolled back with it: refused, and audited
        _refuse(factory, "halt-lift" if lift else "halt-raise", person,
                f"{err.name} cannot be recorded ({err.message}): the halt row must be "
                "repaired first", actor=actor)  # fmt: skip
    return done


def _refuse(
    factory: Factory,
    action: str,
    person: str,
    reason: str,
    *,
    digest: str = "",
    actor: str = "unauthenticated",
) -> NoReturn:
    """Audit the refused attempt (`halt-refused`), then exit with its reason."""
    from codefactory.audit.events import HaltRefused
    from codefactory.identity.governance import LEDGER

    claimed = person.encode("unicode_escape").decode("ascii")[:120]  # typed, not proven
    factory.store.append(HaltRefused( actor=actor, run_id=LEDGER, action=action, claimed=claimed,
                         reason=reason, statement_digest=digest))  # fmt: skip
    fail(f"{action} refused: {reason}")


def _show_status(as_json: bool) -> None:
    from codefactory.store.halts import HaltStore

    halts = HaltStore(read_store().engine)
    current = halts.active()
    history = halts.history(10)
    target = state.settings.identity.issuer  # what a halt statement must name as its target
    if as_json:
        print_json({
            "target": target,
            "halted": current is not None,
            "halt": _as_dict(current) if current is not None else None,
            "history": [_as_dict(h) for h in history],
        })  # fmt: skip
        return
    if current is None:
        console.print("not halted: runs start and engines run", highlight=False)
    else:
        console.print(f"the factory is {shown(current.describe)}", highlight=False)
    console.print(f"statements name the target {shown(target)}", highlight=False)
    for past in history:
        lifted = (
            f", lifted by {shown(past.lifted_by)} at {past.lifted_at:%Y-%m-%dT%H:%M:%SZ}: "
            f"{shown(past.lift_reason)}"
            if past.lifted_at is not None
            else " (in force)"
        )
        console.print(f"  halt {past.id}: {shown(past.describe)}{lifted}", highlight=False)


def _as_dict(halt: Halt) -> dict[str, Any]:
    return {
        "id": halt.id,
        "reason": halt.reason,
        "raised_by": halt.raised_by,
        "raised_at": halt.raised_at.isoformat(),
        "lifted_by": halt.lifted_by,
        "lifted_at": halt.lifted_at.isoformat() if halt.lifted_at is not None else None,
        "lift_reason": halt.lift_reason,
        "description": halt.describe,
    }
