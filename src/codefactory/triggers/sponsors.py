"""Who a run acts for: the directory person of the authenticated sender, never a name a
payload claims.

- A delivery a human sent (a labelled issue, a comment, a moved ticket, a slash command, the
  CLI): the sponsor is the directory person of the sender identity inside the signed
  delivery (`TriggerEvent.sender`), who must hold `Role.SPONSOR`; they also caused it.
- An autonomous trigger (an alert, a failed check, a schedule): the sponsor is the bound
  repository's configured `sponsor`, a directory person id that must hold the role; a
  sender the directory knows (the person whose push failed a check) is who caused it.
- The generic webhook: its sender is its key (`webhook` identity). `data.requested_by` names
  the sponsor only where policy lets that key act for that person
  (`Webhook::"<key>"` `Action::"act-for"` `Person::"<id>"`; default deny).

Anything else (an unknown sender, a sender without the role, an unreadable directory, a
refused identity) is a refusal whose reason names the kind and the identity, escaped.
"""

from __future__ import annotations

from dataclasses import dataclass

from codefactory.domain import TriggerEvent
from codefactory.identity.directory import Directory, IdentityKind, Person, Role
from codefactory.identity.errors import IdentityError
from codefactory.policy.port import AuthorizationRequest, EntityRef, PolicyEngine
from codefactory.triggers.text import shown

ACT_FOR = 'Action::"act-for"'


@dataclass(frozen=True, kw_only=True)
class Sponsorship:
    """The outcome: the sponsor's person id and who caused the trigger (`user:<id>`), or
    the refusal (`refusal` non-empty, `sponsor` empty)."""

    sponsor: str = ""
    caused_by: str = ""
    refusal: str = ""
    policy_ids: tuple[str, ...] = ()


def sponsorship(
    event: TriggerEvent,
    *,
    directory: Directory,
    policy: PolicyEngine,
    configured_sponsor: str = "",
) -> Sponsorship:
    """Decide who `event`'s run acts for (module docstring); never raises for bad input."""
    try:
        if event.sender_kind == IdentityKind.WEBHOOK and not event.autonomous:
            return _webhook(event, directory, policy)
        if event.autonomous:
            return _autonomous(event, directory, configured_sponsor)
        return _sent(event, directory)
    except (IdentityError, ValueError) as err:  # unreadable directory, refused identity
        return Sponsorship(refusal=f"the sponsor cannot be established: {shown(str(err), 300)}")


def _sent(event: TriggerEvent, directory: Directory) -> Sponsorship:
    if not event.sender_kind or not event.sender:
        return Sponsorship(refusal=f"the {event.source} trigger names no sender to sponsor it")
    person = directory.resolve(IdentityKind(event.sender_kind), event.sender)
    who = f"the {event.sender_kind} identity '{shown(event.sender)}'"
    if person is None:
        return Sponsorship(refusal=f"{who} is not in the directory: only known people sponsor")
    return _with_role(person, who, caused_by=person.actor)


def _autonomous(event: TriggerEvent, directory: Directory, configured: str) -> Sponsorship:
    caused_by = ""
    if event.sender_kind and event.sender:
        try:
            cause = directory.resolve(IdentityKind(event.sender_kind), event.sender)
        except (IdentityError, ValueError):
            cause = None
        caused_by = cause.actor if cause is not None else ""
    if not configured:
        return Sponsorship(
            refusal=f"the autonomous {event.source} trigger has no configured sponsor "
            "(triggers.repositories.<name>.sponsor)",
            caused_by=caused_by,
        )
    person = directory.person(configured)
    who = f"the configured sponsor '{shown(configured)}'"
    if person is None:
        return Sponsorship(refusal=f"{who} is not in the directory", caused_by=caused_by)
    return _with_role(person, who, caused_by=caused_by)


def _webhook(event: TriggerEvent, directory: Directory, policy: PolicyEngine) -> Sponsorship:
    claimed = event.attributes.get("requested_by", "")
    person = directory.person(claimed) if claimed else None
    if person is None:
        return Sponsorship(
            refusal=f"`requested_by` '{shown(claimed)}' is no person id in the directory"
        )
    key = EntityRef(type="Webhook", id=event.sender)
    request = AuthorizationRequest(
        principal=key,
        action=ACT_FOR,
        resource=EntityRef(type="Person", id=person.id),
        context={"source": event.source},
    )
    decision = policy.authorize_batch([request])[0]
    if not decision.allowed:
        return Sponsorship(
            refusal=f"policy does not let the webhook key '{shown(event.sender)}' act for "
            f"{person.id} ({decision.summary or 'no policy permits act-for'})",
            policy_ids=decision.policy_ids,
        )
    found = _with_role(person, f"the requested sponsor {person.id}", caused_by=person.actor)
    return Sponsorship(
        sponsor=found.sponsor,
        caused_by=found.caused_by,
        refusal=found.refusal,
        policy_ids=decision.policy_ids,
    )


def _with_role(person: Person, who: str, *, caused_by: str) -> Sponsorship:
    if not person.has_role(Role.SPONSOR):
        return Sponsorship(
            refusal=f"{who} is {person.id}, who does not hold the `sponsor` role",
            caused_by=caused_by,
        )
    return Sponsorship(sponsor=person.id, caused_by=caused_by)
