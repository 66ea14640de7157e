"""Publish a signed checkpoint whenever a run comes to rest (in review, or ended).

A wrapper around the run observer, as cross-cutting concerns are (STYLE.md): examiners get
a fresh checkpoint covering each run's events without anyone asking for one. The factory's
log is a `WitnessedAuditLog` (`witnessing.py`), so each such checkpoint also goes to the
configured witnesses; a witness that fails is an audit event, never a failed run.
"""

from __future__ import annotations

from collections.abc import Callable

from codefactory.audit.errors import AuditError
from codefactory.audit.port import AuditLog
from codefactory.domain import RunState

Observer = Callable[[str, RunState, str], None]


def checkpoint_when_resting(audit: AuditLog, observer: Observer | None) -> Observer:
    """`observer`, followed by a checkpoint when the run rests in review or ends."""

    def observe(run_id: str, state: RunState, reason: str) -> None:
        if observer is not None:
            observer(run_id, state, reason)
        if state is RunState.IN_REVIEW or state.is_terminal:
            try:
                audit.checkpoint()
            except AuditError:
                # An inconsistent log must not break the run's own failure path; `audit
                # verify` names the problem, and no checkpoint is signed over it.
                pass

    return observe
