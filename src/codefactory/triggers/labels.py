"""Labels and chat-ops commands → kinds of change; shared by every ticket-like source.

What a ticket *says* only steers the engine; the kind chosen here is then put to policy,
which alone decides what the kind may do.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from codefactory.domain import ChangeKind

# Label (lower case) → kind of change. The first label that matches decides.
LABEL_KINDS: Mapping[str, ChangeKind] = {
    "dependency": ChangeKind.BUMP_DEPENDENCY,
    "dependencies": ChangeKind.BUMP_DEPENDENCY,
    "security": ChangeKind.BUMP_DEPENDENCY,
    "vulnerability": ChangeKind.BUMP_DEPENDENCY,
    "lint": ChangeKind.FIX_LINT,
    "code-style": ChangeKind.FIX_LINT,
    "ci": ChangeKind.MODIFY_CI,
    "pipeline": ChangeKind.MODIFY_CI,
    "infrastructure": ChangeKind.MODIFY_INFRASTRUCTURE,
    "terraform": ChangeKind.MODIFY_INFRASTRUCTURE,
}

# `/factory <verb>` → kind; `fix` takes the kind from the labels.
COMMAND_KINDS: Mapping[str, ChangeKind] = {
    "bump": ChangeKind.BUMP_DEPENDENCY,
    "lint": ChangeKind.FIX_LINT,
}
COMMAND_VERBS = frozenset({"fix", *COMMAND_KINDS})

# Names of CI checks whose failure a lint fix can repair.
LINT_CHECK = re.compile(r"lint|ruff|flake8|pylint|eslint|code.?style|format", re.IGNORECASE)


def kind_from_labels(labels: Iterable[str]) -> ChangeKind:
    """The change kind a ticket's labels ask for; `general_change` when none matches."""
    for label in labels:
        kind = LABEL_KINDS.get(label.lower())
        if kind is not None:
            return kind
    return ChangeKind.GENERAL_CHANGE


def starts_work(label: str, trigger_labels: Iterable[str]) -> bool:
    """Whether adding `label` asks the factory for work."""
    lowered = label.lower()
    return lowered in LABEL_KINDS or lowered in {t.lower() for t in trigger_labels}


def command(text: str, prefix: str) -> tuple[str, str] | None:
    """`(verb, rest)` of a comment whose first line is `<prefix> <verb> …`, else None."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    words = first.split(maxsplit=2)
    if len(words) < 2 or words[0] != prefix or words[1].lower() not in COMMAND_VERBS:
        return None
    return words[1].lower(), words[2] if len(words) > 2 else ""


def command_kind(verb: str, labels: Iterable[str]) -> ChangeKind:
    return COMMAND_KINDS.get(verb) or kind_from_labels(labels)


def check_kind(check_name: str) -> ChangeKind:
    """A failed lint check asks for a lint fix; any other failure for a general change."""
    return ChangeKind.FIX_LINT if LINT_CHECK.search(check_name) else ChangeKind.GENERAL_CHANGE
