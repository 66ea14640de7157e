"""Filing a packaged run's change request in ServiceNow (Table API `change_request`).

The package's `cab.json` is already the record a change manager files; on packaging, when
`changes.file_in_servicenow` is on, it is created on the instance (`servicenow.*`), with the
assignment group and the planned window from settings, and the package itself attached as
a zip (Attachment API). The change's number is a `change-request-filed` audit event of the
run; a failure is `change-request-failed` with ServiceNow's answer and leaves the run in
review (a CAB that never saw the change cannot approve it).

The CAB's answer is the change's `approval` field (`not requested`, `requested`, `approved`,
`rejected`): `ChangeRequests.answer` reads it (Table API `GET change_request/<sys_id>`) and,
for a rejection, the rejecting approvers' comments (`sysapproval_approver`). A business rule
on the instance may also announce a change in `approval` (`read_approval_delivery`: the body
`{"number", "sys_id", "approval"}`, the shared secret in `X-Codefactory-Token`, as incident
deliveries carry it); the delivery only prompts a fresh read of the Table API, its own
`approval` is never taken as the CAB's word.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from codefactory.audit.events import ChangeRequestFailed, ChangeRequestFiled, typed
from codefactory.audit.port import AuditRecord
from codefactory.context.errors import ContextError, MalformedResponse
from codefactory.context.http import VendorClient, path_segment
from codefactory.domain import AuditEvent, Run
from codefactory.review.errors import ReviewError
from codefactory.review.settings import ChangeSettings
from codefactory.triggers.port import Delivery

TABLE = "change_request"
APPROVERS = "sysapproval_approver"
FILED_EVENT = ChangeRequestFiled.NAME
APPROVED = "approved"
REJECTED = "rejected"
CAB_WAIT = "waiting for CAB approval"
"""How an `approved` run's reason says the hand-off waits for the CAB (`HandOff.cab_note`
writes it, the notifications read it)."""
CANCELED_STATE = "4"
"""`change_request.state` Canceled (New -5 … Review 0, Closed 3, Canceled 4): never implemented."""
TOKEN_HEADER = "X-Codefactory-Token"
"""The header a business rule's outbound REST message carries the shared secret in."""
SERVICENOW_TIME = "%Y-%m-%d %H:%M:%S"
"""The Table API's date-time format (UTC when the integration user's zone is UTC)."""


@dataclass(frozen=True, kw_only=True)
class FiledChange:
    """A change request as ServiceNow created it."""

    sys_id: str
    number: str


class ChangeRequests:
    """The Table and Attachment APIs for `change_request`, through `client`."""

    def __init__(self, client: VendorClient) -> None:
        self.client = client

    def file(self, fields: dict[str, str]) -> FiledChange:
        """Create the change request; raises a `ContextError` naming ServiceNow's answer."""
        answer = self.client.post_json(f"/api/now/table/{TABLE}", fields)
        result = answer.get("result") if isinstance(answer, dict) else None
        if not isinstance(result, dict) or not result.get("sys_id") or not result.get("number"):
            raise MalformedResponse("servicenow", "the created change has no sys_id or number")
        return FiledChange(sys_id=str(result["sys_id"]), number=str(result["number"]))

    def attach(self, change: FiledChange, name: str, content: bytes) -> None:
        """Attach `content` (a zip) to the change as `name`."""
        self.client.post_bytes(
            "/api/now/attachment/file",
            content,
            "application/zip",
            params={"table_name": TABLE, "table_sys_id": change.sys_id, "file_name": name},
        )

    def approval(self, change: FiledChange) -> str:
        """The change's `approval` (`requested`, `approved`, `rejected`, `not requested`)."""
        return str(self._record(change).get("approval", ""))

    def _record(self, change: FiledChange) -> dict[str, Any]:
        """The change's `approval`, `number` and `state`; `MalformedResponse` for an answer
        without a result, or whose `number` is missing or another change's."""
        answer = self.client.get_json(
            f"/api/now/table/{TABLE}/{path_segment(change.sys_id)}",
            {"sysparm_fields": "approval,number,state"},
        )
        result = answer.get("result") if isinstance(answer, dict) else None
        if not isinstance(result, dict):
            raise MalformedResponse("servicenow", f"{change.number} was answered without a result")
        if str(result.get("number", "")) != change.number:
            raise MalformedResponse(
                "servicenow", f"{change.sys_id} is {result.get('number')!r}, not {change.number}"
            )
        return result

    def rejection_reason(self, change: FiledChange) -> str:
        """Who rejected the change and why: the comments of its rejected approval records
        (`sysapproval_approver`, dot-walked `approver.user_name`), one per approver."""
        answer = self.client.get_json(
            f"/api/now/table/{APPROVERS}",
            {
                "sysparm_query": f"sysapproval={change.sys_id}^state=rejected",
                "sysparm_fields": "approver.user_name,comments",
                "sysparm_limit": "20",
            },
        )
        records = answer.get("result") if isinstance(answer, dict) else None
        if not isinstance(records, list):
            raise MalformedResponse("servicenow", f"{change.number}'s approvals: no result list")
        said = [
            f"{r.get('approver.user_name') or 'an approver'}: {r.get('comments') or 'no reason'}"
            for r in records
            if isinstance(r, dict)
        ]
        return "; ".join(said) or "no reason given in ServiceNow"

    def answer(self, change: FiledChange) -> CabAnswer:
        """The CAB's answer on `change`; for a rejection, with its reason."""
        record = self._record(change)
        if str(record.get("state", "")) == CANCELED_STATE:  # never implemented: no approval
            reason = f"{change.number} was cancelled in ServiceNow"
            return CabAnswer(change=change, approval=REJECTED, reason=reason)
        approval = str(record.get("approval", ""))
        reason = self.rejection_reason(change) if approval == REJECTED else ""
        return CabAnswer(change=change, approval=approval, reason=reason)


@dataclass(frozen=True, kw_only=True)
class CabAnswer:
    """What ServiceNow says of a change: its `approval` and, when rejected, why."""

    change: FiledChange
    approval: str
    reason: str = ""


class CabError(ReviewError):
    """The hand-off cannot proceed on the CAB's word (yet); names the change."""


class ChangeRequestMissing(CabError):
    """The change must pass the CAB but no change request was filed for it."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"run {run_id} needs the CAB's approval but no change request was filed for it "
            "(see its change-request-failed event): file it in ServiceNow first"
        )
        self.run_id = run_id


class CabApprovalPending(CabError):
    """The CAB has not approved the change yet (`approval` is `requested`, `not requested`)."""

    def __init__(self, run_id: str, number: str, approval: str) -> None:
        super().__init__(
            f"run {run_id} waits for CAB approval of {number} (ServiceNow says approval "
            f"{approval or 'empty'!r}); try again when the CAB has decided"
        )
        self.run_id = run_id
        self.number = number
        self.approval = approval


class CabCheckFailed(CabError):
    """ServiceNow could not be asked (down, refused the credential, answered nonsense)."""

    def __init__(self, run_id: str, number: str, error: str) -> None:
        super().__init__(f"could not read the CAB's approval of {number} for run {run_id}: {error}")
        self.run_id = run_id
        self.number = number
        self.error = error


class ApprovalDeliveryInvalid(CabError):
    """A change approval delivery that is not signed, not JSON, or names no known change."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"change approval delivery refused: {reason}")
        self.reason = reason


class ApprovalDeliveryUnauthenticated(ApprovalDeliveryInvalid):
    """The delivery's shared secret is missing or wrong (or none is configured). Not audited
    one by one: the route tallies unauthenticated deliveries per minute, as the webhook
    intake does (`triggers/rejections.py`), so a flood cannot fill the audit log."""


def filed_change(events: Iterable[AuditRecord]) -> FiledChange | None:
    """The run's change request, from its latest `change-request-filed` event."""
    filed = [e for e in map(typed, events) if isinstance(e, ChangeRequestFiled)]
    if not filed:
        return None
    return FiledChange(sys_id=filed[-1].sys_id, number=filed[-1].number)


def needs_cab(package_dir: Path) -> bool:
    """Whether the packaged change goes to the CAB: its `cab.json` `type` is not `standard`
    (`package/cab.py`: only a low-risk recipe change is standard). An unreadable record
    needs the CAB."""
    try:
        cab = json.loads((package_dir / "cab.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    return not (isinstance(cab, dict) and cab.get("type") == "standard")


@dataclass(frozen=True, kw_only=True)
class ApprovalDelivery:
    """A business rule's notice that a change's `approval` changed (a prompt, not proof)."""

    number: str
    sys_id: str
    approval: str


def read_approval_delivery(delivery: Delivery, secret: str) -> ApprovalDelivery:
    """The delivery's change, after its shared secret is checked (constant time);
    `ApprovalDeliveryUnauthenticated` for a missing or wrong secret, `ApprovalDeliveryInvalid`
    for a body that is not a JSON object of short strings `number`, `sys_id`, `approval`."""
    from codefactory.triggers.errors import TriggerError
    from codefactory.triggers.signing import require_token

    if not secret:
        raise ApprovalDeliveryUnauthenticated("no shared secret is configured for change approvals")
    try:
        require_token(delivery, header=TOKEN_HEADER, secret=secret)
    except TriggerError as err:
        raise ApprovalDeliveryUnauthenticated(str(err)) from err
    try:
        document = json.loads(delivery.body)
    except (UnicodeDecodeError, ValueError) as err:
        raise ApprovalDeliveryInvalid(f"the body is not JSON: {err}") from None
    fields = {}
    for name in ("number", "sys_id", "approval"):
        value = document.get(name) if isinstance(document, dict) else None
        if not isinstance(value, str) or not value.strip() or len(value) > 64:
            raise ApprovalDeliveryInvalid(f"`{name}` is missing, empty or not a short string")
        fields[name] = value.strip()
    return ApprovalDelivery(**fields)


def change_fields(cab: dict[str, Any], settings: ChangeSettings, now: datetime) -> dict[str, str]:
    """The Table API fields of `cab` (the package's `cab.json`): strings, the planned window
    from `settings`, the assignment group, and Code Factory's facts as one JSON field."""
    start = now.astimezone(UTC) + timedelta(hours=settings.lead_time_h)
    end = start + timedelta(hours=settings.window_h)
    fields = {
        key: str(value).lower() if isinstance(value, bool) else str(value)
        for key, value in cab.items()
        if value is not None and not isinstance(value, dict | list)
    }
    fields["start_date"] = start.strftime(SERVICENOW_TIME)
    fields["end_date"] = end.strftime(SERVICENOW_TIME)
    if settings.assignment_group:
        fields["assignment_group"] = settings.assignment_group
    if isinstance(cab.get("u_codefactory"), dict):
        fields["u_codefactory"] = json.dumps(cab["u_codefactory"], sort_keys=True)
    return fields


def package_zip(folder: Path) -> bytes:
    """The package folder as a zip (names relative to it, in a stable order)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
            archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


Record = Callable[[AuditEvent], object]
"""Appends one audit event in a transaction of its own (`RunRepository.append`)."""


@dataclass(kw_only=True)
class ChangeFiling:
    """Files each packaged run's change request (the loop's hook after packaging)."""

    settings: ChangeSettings
    client: Callable[[], VendorClient]
    record: Record
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    filed_already: Callable[[str], bool] = lambda _run_id: False
    """Whether the run's change request was filed before (a stopped worker's run resumed
    after its filing): it is then not filed twice."""

    def __call__(self, run: Run, package_dir: Path) -> None:
        """File and attach; every outcome is an audit event, none raises."""
        if self.filed_already(run.id):
            return
        client: VendorClient | None = None
        filed: FiledChange | None = None
        try:
            cab = json.loads((package_dir / "cab.json").read_text(encoding="utf-8"))
            client = self.client()
            changes = ChangeRequests(client)
            filed = changes.file(change_fields(cab, self.settings, self.now()))
            changes.attach(filed, f"codefactory-{run.id}.zip", package_zip(package_dir))
        except (ContextError, OSError, ValueError) as err:
            self.record(
                ChangeRequestFailed(
                    actor="factory",
                    run_id=run.id,
                    number=filed.number if filed else "",
                    error=str(err),
                )
            )
            return
        finally:
            if client is not None:
                client.close()
        self.record(
            ChangeRequestFiled(
                actor="factory",
                run_id=run.id,
                number=filed.number,
                sys_id=filed.sys_id,
                attached=f"codefactory-{run.id}.zip",
            )
        )
