"""The Jira ticket that started a run hears of its milestones: a comment (REST v3, Atlassian
Document Format) and, where the bank names one, a workflow transition.

Milestones are run states (`in_review`, `handed_off`, `failed`, `rejected`, ...) listed in
`notify.jira.milestones`; `notify.jira.transitions` maps a state to the transition id its
workflow uses (`{"in_review": "31"}`). Each update is a `jira-updated` audit event, a failure
`jira-update-failed` with the reason; neither ever fails the run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from codefactory.audit.events import JiraUpdated, JiraUpdateFailed
from codefactory.context.errors import ContextError
from codefactory.context.http import VendorClient, path_segment
from codefactory.domain import AuditEvent, Run, RunState, TriggerEvent
from codefactory.review.settings import JiraUpdateSettings

Record = Callable[[AuditEvent], object]
"""Appends one audit event in a transaction of its own (`RunRepository.append`)."""


def adf_paragraphs(*paragraphs: str) -> dict[str, Any]:
    """An Atlassian Document Format document of plain-text paragraphs."""
    return {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": text}]}
            for text in paragraphs
            if text
        ],
    }


@dataclass(kw_only=True)
class JiraMilestones:
    """A run observer: at each configured milestone of a run started by a Jira ticket,
    comment on the ticket and move it through the configured transition."""

    settings: JiraUpdateSettings
    client: Callable[[], VendorClient]
    """The Jira client (credential read when an update is made)."""
    run_of: Callable[[str], Run | None]
    trigger_of: Callable[[Run], TriggerEvent | None]
    record: Record

    def __call__(self, run_id: str, state: RunState, reason: str) -> None:
        if state.value not in self.settings.milestones:
            return
        run = self.run_of(run_id)
        trigger = self.trigger_of(run) if run is not None else None
        if run is None or trigger is None or trigger.source != "jira":
            return
        key = trigger.external_id
        done: list[str] = []
        client: VendorClient | None = None
        try:
            client = self.client()
            client.post_json(
                f"/rest/api/3/issue/{path_segment(key)}/comment",
                {"body": self._comment(run, state, reason)},
            )
            done.append("comment")
            transition = self.settings.transitions.get(state.value)
            if transition:
                client.post_json(
                    f"/rest/api/3/issue/{path_segment(key)}/transitions",
                    {"transition": {"id": transition}},
                )
                done.append(f"transition {transition}")
        except ContextError as err:
            self._failed(run_id, key, state, done, str(err))
            return
        finally:
            if client is not None:
                client.close()
        self.record(
            JiraUpdated(actor="factory", run_id=run_id, issue=key, state=state.value, done=done)
        )

    def _failed(self, run_id: str, key: str, state: RunState, done: list[str], error: str) -> None:
        self.record(
            JiraUpdateFailed(
                actor="factory",
                run_id=run_id,
                issue=key,
                state=state.value,
                done=done,
                error=error,
            )
        )

    @staticmethod
    def _comment(run: Run, state: RunState, reason: str) -> dict[str, Any]:
        where = f"Branch {run.branch}." if run.branch else ""
        return adf_paragraphs(
            f"Code Factory run {run.id} is now {state.value}: {reason}",
            where,
            f"Details: codefactory runs show {run.id}",
        )
