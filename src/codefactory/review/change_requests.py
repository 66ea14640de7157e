"""Filing a packaged run's change request in ServiceNow (Table API `change_request`).

The package's `cab.json` is already the record a change manager files; on packaging, when
`changes.file_in_servicenow` is on, it is created on the instance (`servicenow.*`), with the
assignment group and the planned window from settings, and the package itself attached as
a zip (Attachment API). The change's number is a `change-request-filed` audit event of the
run; a failure is `change-request-failed` with ServiceNow's answer and leaves the run in
review (a CAB that never saw the change cannot approve it: the hand-off gate is still to
come, issue 14).
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from codefactory.context.errors import ContextError, MalformedResponse
from codefactory.context.http import VendorClient, path_segment
from codefactory.domain import Run
from codefactory.review.settings import ChangeSettings

TABLE = "change_request"
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
        answer = self.client.get_json(
            f"/api/now/table/{TABLE}/{path_segment(change.sys_id)}",
            {"sysparm_fields": "approval,number,state"},
        )
        result = answer.get("result") if isinstance(answer, dict) else None
        if not isinstance(result, dict):
            raise MalformedResponse("servicenow", f"{change.number} was answered without a result")
        return str(result.get("approval", ""))


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


Record = Callable[..., object]


@dataclass(kw_only=True)
class ChangeFiling:
    """Files each packaged run's change request (the loop's hook after packaging)."""

    settings: ChangeSettings
    client: Callable[[], VendorClient]
    record: Record
    now: Callable[[], datetime] = lambda: datetime.now(UTC)

    def __call__(self, run: Run, package_dir: Path) -> None:
        """File and attach; every outcome is an audit event, none raises."""
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
                "change-request-failed",
                actor="factory",
                run_id=run.id,
                number=filed.number if filed else "",
                error=str(err),
            )
            return
        finally:
            if client is not None:
                client.close()
        self.record(
            "change-request-filed",
            actor="factory",
            run_id=run.id,
            number=filed.number,
            sys_id=filed.sys_id,
            attached=f"codefactory-{run.id}.zip",
        )
