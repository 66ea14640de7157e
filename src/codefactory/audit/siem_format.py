"""Audit events in the formats SIEMs ingest: OCSF JSON and RFC 5424 syslog.

OCSF (schema 1.3.0): every event is an **API Activity** (class_uid 6003, category 6
"Application Activity"): the factory's events are operations of an application. The event
name decides `activity_id` by its verb (created/started/issued → 1 Create, read/viewed → 2
Read, a state change → 3 Update, deleted/revoked/removed → 4 Delete, else 99 Other); a name
saying failed/refused/rejected/denied/unavailable is `status_id` 2 Failure with severity 3
Medium, else 1 Success, severity 1 Informational. `metadata.uid` is `<log origin>/<seq>`,
`metadata.sequence` the leaf index, `metadata.correlation_uid` the run id; the leaf hash,
run id and event data go under `unmapped`.

Syslog (RFC 5424): facility 13 (log audit), severity 6 informational or 4 warning (as the
OCSF failure rule), APP-NAME `codefactory`, MSGID the event name (cut to 32 characters),
structured data `[codefactory@32473 name=… seq=… leafHash=… actor=… runId=…]` (32473 is
RFC 5612's documentation enterprise number; `audit.siem.sd_id` sets a bank's own), and the
event's data as canonical JSON after a UTF-8 BOM.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from codefactory.audit.canonical import canonical_json

OCSF_VERSION = "1.3.0"
MAX_DATA_CHARS = 6000
"""Event data longer than this is cut in the stream (the log keeps it whole)."""
_FAILURE_WORDS = ("failed", "refused", "rejected", "denied", "unavailable", "invalid")
_ACTIVITIES = (
    (1, "Create", ("created", "started", "issued", "registered", "opened", "added", "queued")),
    (2, "Read", ("read", "viewed", "exported", "listed")),
    (
        3,
        "Update",
        (
            "updated",
            "changed",
            "rotated",
            "suspended",
            "activated",
            "approved",
            "ended",
            "moved",
            "merged",
            "waived",
        ),
    ),
    (4, "Delete", ("deleted", "revoked", "removed", "closed")),
)


@dataclass(frozen=True, kw_only=True)
class SiemEvent:
    """An appended audit event, as streamed: its leaf index and leaf hash included."""

    seq: int
    name: str
    actor: str
    run_id: str
    at: datetime
    data: dict[str, Any]
    leaf_hash: str
    log_name: str


def is_failure(name: str) -> bool:
    parts = name.split("-")
    return any(word in parts for word in _FAILURE_WORDS)


def activity(name: str) -> tuple[int, str]:
    parts = name.split("-")
    for activity_id, label, verbs in _ACTIVITIES:
        if any(verb in parts for verb in verbs):
            return activity_id, label
    return 99, "Other"


def _data_text(data: dict[str, Any]) -> str:
    try:
        text = canonical_json(data).decode("utf-8")
    except (TypeError, ValueError):
        text = json.dumps(data, default=str, sort_keys=True)
    return text if len(text) <= MAX_DATA_CHARS else text[:MAX_DATA_CHARS] + "…"


def ocsf(event: SiemEvent, *, hostname: str) -> dict[str, Any]:
    """The event as an OCSF 1.3.0 API Activity object (docstring of this module)."""
    activity_id, activity_name = activity(event.name)
    failure = is_failure(event.name)
    kind = event.actor.split(":", 1)[0] if ":" in event.actor else "service"
    return {
        "activity_id": activity_id,
        "activity_name": activity_name,
        "category_uid": 6,
        "category_name": "Application Activity",
        "class_uid": 6003,
        "class_name": "API Activity",
        "type_uid": 6003 * 100 + activity_id,
        "type_name": f"API Activity: {activity_name}",
        "severity_id": 3 if failure else 1,
        "severity": "Medium" if failure else "Informational",
        "status_id": 2 if failure else 1,
        "status": "Failure" if failure else "Success",
        "time": int(event.at.timestamp() * 1000),
        "message": event.name,
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": "Code Factory", "vendor_name": "Code Factory"},
            "log_name": event.log_name,
            "uid": f"{event.log_name}/{event.seq}",
            "sequence": event.seq,
            "event_code": event.name,
            "correlation_uid": event.run_id or None,
        },
        "actor": {"user": {"name": event.actor, "uid": event.actor, "type": kind}},
        "api": {"operation": event.name, "service": {"name": "codefactory"}},
        "src_endpoint": {"hostname": hostname},
        "cloud": {"provider": "self-hosted"},
        "unmapped": {
            "leaf_hash": event.leaf_hash,
            "run_id": event.run_id,
            "data": _data_text(event.data),
        },
    }


def ocsf_line(event: SiemEvent, *, hostname: str) -> bytes:
    return json.dumps(ocsf(event, hostname=hostname), sort_keys=True).encode("utf-8")


def _sd_value(value: str) -> str:
    """RFC 5424 §6.3.3: `"`, `\\` and `]` are escaped with a backslash."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _header_token(value: str, limit: int) -> str:
    """PRINTUSASCII without spaces, at most `limit` characters, or the NILVALUE `-`."""
    token = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return token or "-"


def syslog(event: SiemEvent, *, hostname: str, sd_id: str = "codefactory@32473") -> bytes:
    """The event as one RFC 5424 message (docstring of this module)."""
    severity = 4 if is_failure(event.name) else 6
    pri = 13 * 8 + severity
    at = event.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    params = {
        "name": event.name,
        "seq": str(event.seq),
        "leafHash": event.leaf_hash,
        "actor": event.actor,
        "runId": event.run_id,
        "log": event.log_name,
    }
    sd = "[" + sd_id + "".join(f' {k}="{_sd_value(v)}"' for k, v in params.items()) + "]"
    header = (
        f"<{pri}>1 {at} {_header_token(hostname, 255)} codefactory {os.getpid()} "
        f"{_header_token(event.name, 32)} {sd} "
    )
    return header.encode("utf-8") + b"\xef\xbb\xbf" + _data_text(event.data).encode("utf-8")
