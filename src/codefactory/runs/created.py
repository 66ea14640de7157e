"""What a run was created as: its `run-created` audit event, against its stored row.

The store's row of a run can be edited by anyone with the database; the audit log's
`run-created` event cannot be without `audit verify` saying so. Whoever is about to act on a
run's agent, engine or kind (a worker picking up an authorized run, a takeover, a replay)
reads them from the row and checks them here first.
"""

from __future__ import annotations

from codefactory.audit.events import RunCreated, typed
from codefactory.domain import Run
from codefactory.store.port import RunRepository


def created_mismatch(store: RunRepository, run: Run) -> str | None:
    """Why `run` (its stored row) is not what its `run-created` event recorded: the event is
    missing, or the agent, engine or kind differs (a field the event predates, recorded
    empty, is not compared); None when they agree."""
    created = next(
        (e for e in map(typed, store.audit_events(run.id)) if isinstance(e, RunCreated)), None
    )
    if created is None:
        return f"run {run.id} has no run-created event in the audit log"
    for what, stored, recorded in (
        ("agent", run.agent_id, created.agent_id),
        ("engine", run.engine, created.engine),
        ("kind", run.kind.value, created.kind),
    ):
        if recorded and stored != recorded:
            return (
                f"run {run.id}'s {what} is {stored!r} in the store but {recorded!r} in its "
                "run-created event: the store was edited outside the factory"
            )
    return None
