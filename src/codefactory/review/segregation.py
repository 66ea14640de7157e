"""The segregation-of-duties gate in front of every approval."""

from __future__ import annotations

from codefactory.review.errors import ReviewerMissing, SelfApprovalRefused


def _normalized(name: str) -> str:
    return name.strip().casefold()


def check_reviewer(
    *, reviewer: str, sponsor: str, agent_id: str, trigger_actor: str, run_id: str = ""
) -> None:
    """Refuse an approval by anyone who asked for, sponsored or made the change.

    NIST SP 800-53 AC-5 (separation of duties) and CM-3: the person who approves a change
    is not the one who requested it, is not accountable for it as sponsor, and is not the
    agent that wrote it; agents never approve.
    """
    who = _normalized(reviewer)
    if not who:
        raise ReviewerMissing()
    roles = (("sponsor", sponsor), ("agent", agent_id), ("requester", trigger_actor))
    for role, holder in roles:
        if _normalized(holder) == who:
            raise SelfApprovalRefused(reviewer.strip(), role, run_id)
