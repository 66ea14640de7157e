"""The CAB's gate in front of the hand-off.

`CabGate` decides whether the hand-off waits for the change-approval board: only with
`changes.file_in_servicenow` and `changes.cab_gate` on, and only for a change its package's
`cab.json` does not call `standard` (ServiceNow's pre-approved change type, which
`package/cab.py` gives a low-risk recipe change). The CAB's word is the change request's
`approval` field, read through the Table API (`review/change_requests.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from codefactory.audit.port import AuditRecord
from codefactory.context.http import VendorClient
from codefactory.domain import Run
from codefactory.review.change_requests import (
    CabAnswer,
    ChangeRequestMissing,
    ChangeRequests,
    FiledChange,
    filed_change,
    needs_cab,
)
from codefactory.review.settings import ChangeSettings

NOT_REQUIRED = CabAnswer(change=FiledChange(sys_id="", number=""), approval="not required")
"""The gate's answer when the change does not go to the CAB (off, or a standard change)."""


class CabGate:
    """Whether a run's hand-off waits for the CAB, and the CAB's answer from ServiceNow."""

    def __init__(
        self, settings: ChangeSettings, client: Callable[[], VendorClient] | None = None
    ) -> None:
        """`client()`: a ServiceNow client (`servicenow.*`), made for each question."""
        self.settings = settings
        self.client = client

    @property
    def enabled(self) -> bool:
        return bool(
            self.settings.file_in_servicenow and self.settings.cab_gate and self.client is not None
        )

    def change_for(self, run: Run, events: Iterable[AuditRecord]) -> FiledChange | None:
        """The change request the CAB must approve before `run` is handed off; None when
        the gate is off or the change is standard. `ChangeRequestMissing` when one is needed
        but none was filed."""
        if not self.enabled or not run.package_dir or not needs_cab(Path(run.package_dir)):
            return None
        change = filed_change(events)
        if change is None:
            raise ChangeRequestMissing(run.id)
        return change

    def answer(self, change: FiledChange) -> CabAnswer:
        """ServiceNow's answer now; a `ContextError` when it cannot be asked."""
        assert self.client is not None  # `enabled` was checked by `change_for`
        client = self.client()
        try:
            return ChangeRequests(client).answer(change)
        finally:
            client.close()
