"""The segregation-of-duties gate in front of every approval.

NIST SP 800-53 AC-5 (separation of duties) and CM-3: the person who approves a change is not
the one who requested it, not the one who caused the trigger, not accountable for it as
sponsor, and not the agent that wrote it; non-humans never approve. Names are compared after
NFKC normalisation and case folding (`identity.names`), so `Priya.Shah`, `user:priya.shah`
and `ｐriya.shah` are one person; a reviewer name with control, format or zero-width
characters is refused outright.
"""

from __future__ import annotations

import unicodedata

from codefactory.identity.errors import IdentityRefused
from codefactory.identity.names import REFUSED_CATEGORIES, check_identity
from codefactory.review.errors import NonHumanReviewer, ReviewerMissing, SelfApprovalRefused

HUMAN_PREFIX = "user:"


def _comparable(actor: str) -> str:
    """A party's name as compared: refused characters dropped (a party's name came from the
    factory's own records, and a hidden character must not make it someone else), the `user:`
    prefix dropped, NFKC, case-folded."""
    visible = "".join(c for c in actor if unicodedata.category(c) not in REFUSED_CATEGORIES)
    text = unicodedata.normalize("NFKC", visible.strip()).casefold()
    return text.removeprefix(HUMAN_PREFIX)


def same_person(first: str, second: str) -> bool:
    """Whether two actor names (`user:priya.shah`, `Priya.Shah`) name one person, compared as
    `check_reviewer` compares parties."""
    return bool(first.strip()) and _comparable(first) == _comparable(second)


def check_reviewer(
    *,
    reviewer: str,
    sponsor: str,
    agent_id: str,
    trigger_actor: str,
    caused_by: str = "",
    run_id: str = "",
) -> None:
    """Refuse an approval by anyone who asked for, caused, sponsored or made the change, and
    by anything that is not a person (`agent:…`, `service:…`).

    Raises `ReviewerMissing`, `SelfApprovalRefused` (names the role the
    reviewer holds) or `NonHumanReviewer`.
    """
    name = reviewer.strip()
    if not name:
        raise ReviewerMissing()
    try:
        check_identity(name, what="reviewer")
    except IdentityRefused as err:
        raise NonHumanReviewer(name, run_id, str(err)) from err
    who = _comparable(name)
    roles = (
        ("sponsor", sponsor),
        ("agent", agent_id),
        ("requester", trigger_actor),
        ("person who caused the trigger", caused_by),
    )
    for role, holder in roles:
        if holder.strip() and _comparable(holder) == who:
            raise SelfApprovalRefused(name, role, run_id)
    if ":" in who:
        raise NonHumanReviewer(name, run_id, "non-humans never approve")
