"""Reading untrusted payloads: typed getters that never raise anything but `DeliveryInvalid`,
and the one constructor of webhook `TriggerEvent`s."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from itertools import accumulate
from typing import Any
from urllib.parse import parse_qs

from codefactory.domain import ChangeKind, TriggerEvent
from codefactory.triggers.errors import DeliveryInvalid
from codefactory.triggers.port import Delivery
from codefactory.triggers.text import BODY_KEEPS, TextRefused, check_line

# Column widths of the `triggers` table (PostgreSQL enforces them) and of audit actors.
MAX_ID = 200

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects a JSON body may have; deeper is a 400, checked
before parsing so no nesting can exhaust the parser's recursion."""
# A JSON string from its opening quote: possessive, so once started it cannot fail or backtrack
# (it ends at the closing quote, or at the end of the text when unterminated, a lone trailing
# backslash included); every character is read once.
_JSON_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]++")
_BRACKET_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class JsonTooDeep(ValueError):
    """A JSON text nested deeper than the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"nested deeper than {limit} levels")
        self.limit = limit


def json_depth_ok(text: str, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise `JsonTooDeep` when `text` (JSON, valid or not) opens more than `limit` arrays
    or objects at once; brackets inside strings (escapes included) do not count.

    Linear in the text whatever it holds (RFC 8259 strings, valid or not): one scan drops
    the strings (a pattern that never backtracks, above), one drops all but brackets, and
    one running sum finds the deepest point, each at C speed (1 MiB in about 0.1 s). The sum
    is not clamped at zero: a closing bracket without its opening one is invalid JSON that
    the parser refuses there, before any nesting after it."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)).encode("ascii")
    if len(brackets) <= limit:
        return
    if max(accumulate(map(_BRACKET_STEP.__getitem__, brackets))) > limit:
        raise JsonTooDeep(limit)


def loads(raw: bytes | str, limit: int = MAX_JSON_DEPTH) -> object:
    """`json.loads` of untrusted text whose depth is checked first; raises `ValueError`
    (`JsonTooDeep`, `json.JSONDecodeError`) or `UnicodeDecodeError`."""
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    json_depth_ok(text, limit)
    return json.loads(text)


def clean(value: str, limit: int = 0) -> str:
    """`value` safe to store and audit: valid UTF-8 (lone surrogates replaced), no NULs."""
    text = value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")
    return text[:limit] if limit else text


def json_object(delivery: Delivery, delivery_id: str = "") -> dict[str, Any]:
    """The body as a JSON object, or `DeliveryInvalid`."""
    try:
        document = loads(delivery.body)
    except JsonTooDeep as err:
        raise DeliveryInvalid(
            delivery.source, delivery_id, f"the JSON body is {err}", code="json-depth"
        ) from None
    except (UnicodeDecodeError, ValueError) as err:
        raise DeliveryInvalid(delivery.source, delivery_id, f"not valid JSON ({err})") from None
    if not isinstance(document, dict):
        raise DeliveryInvalid(delivery.source, delivery_id, "the body must be a JSON object")
    return document


FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"


def form_payload_object(delivery: Delivery, delivery_id: str = "") -> dict[str, Any]:
    """The JSON object of a form-encoded delivery's one `payload=` field (GitHub sends its
    webhooks so when the hook's content type is `application/x-www-form-urlencoded`; the
    signature covers the raw form body), or `DeliveryInvalid`."""
    try:
        fields = parse_qs(
            delivery.body.decode("ascii"), keep_blank_values=True, strict_parsing=True
        )
    except (UnicodeDecodeError, ValueError) as err:
        raise DeliveryInvalid(delivery.source, delivery_id, f"not a form body ({err})") from None
    payloads = fields.get("payload", [])
    if len(payloads) != 1 or set(fields) != {"payload"}:
        raise DeliveryInvalid(
            delivery.source, delivery_id, "a form body must carry exactly one `payload` field"
        )
    try:
        document = loads(payloads[0])
    except JsonTooDeep as err:
        raise DeliveryInvalid(
            delivery.source, delivery_id, f"the `payload` field is {err}", code="json-depth"
        ) from None
    except ValueError as err:
        raise DeliveryInvalid(
            delivery.source, delivery_id, f"the `payload` field is not valid JSON ({err})"
        ) from None
    if not isinstance(document, dict):
        raise DeliveryInvalid(delivery.source, delivery_id, "the payload must be a JSON object")
    return document


def delivered_object(delivery: Delivery, delivery_id: str = "") -> dict[str, Any]:
    """The delivery's JSON object, read by its `Content-Type`: a form's `payload=` field or
    the JSON body."""
    media_type = delivery.header("Content-Type").split(";", 1)[0].strip().lower()
    if media_type == FORM_MEDIA_TYPE:
        return form_payload_object(delivery, delivery_id)
    return json_object(delivery, delivery_id)


def dig(document: Any, *path: str) -> Any:
    """`document[path[0]][path[1]]…`, None where a step is missing or not an object."""
    node = document
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def text(document: Any, *path: str, limit: int = 0) -> str:
    """The string (or number) at `path`, cleaned; "" when absent or of another type."""
    value = dig(document, *path)
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int | float | str):
        return clean(str(value), limit)
    return ""


def mapping(document: Any, *path: str) -> dict[str, Any]:
    value = dig(document, *path)
    return value if isinstance(value, dict) else {}


def items(document: Any, *path: str) -> list[Any]:
    value = dig(document, *path)
    return value if isinstance(value, list) else []


def required(source: str, delivery_id: str, document: Any, *path: str) -> str:
    """The non-empty string at `path`, or `DeliveryInvalid` naming the missing field."""
    value = text(document, *path)
    if not value.strip():
        raise DeliveryInvalid(source, delivery_id, f"`{'.'.join(path)}` is missing or empty")
    return value.strip()


def label_names(values: Sequence[Any], key: str = "name") -> tuple[str, ...]:
    """Label names from a list of strings or of objects with a `key` field."""
    names = [clean(v) if isinstance(v, str) else text(v, key) for v in values]
    return tuple(name for name in names if name)


def epoch(value: str) -> datetime | None:
    """A POSIX timestamp in seconds, or in milliseconds (values past the year 5138), as an
    aware datetime; None if unreadable."""
    try:
        number = float(value)
        return datetime.fromtimestamp(number / 1000 if number > 1e11 else number, UTC)
    except (ValueError, OverflowError, OSError):
        return None


def trigger(
    delivery: Delivery,
    *,
    delivery_id: str,
    event: str,
    kind: ChangeKind,
    external_id: str,
    actor: str,
    repository: str,
    title: str,
    body: str = "",
    labels: Sequence[str] = (),
    links: Sequence[str] = (),
    autonomous: bool = False,
    attributes: Mapping[str, str] | None = None,
    sender_kind: str = "",
    sender: str = "",
) -> TriggerEvent:
    """The `TriggerEvent` a delivery asks for; `repository` is the sender's name for it,
    `sender` the identity (of `sender_kind`, an `IdentityKind` value) the signed delivery
    names as who sent it. `DeliveryInvalid` when an id, the title, a label, a name or the
    sender carries a control, format or zero-width character (`triggers.text`)."""
    links_found = tuple(dict.fromkeys(clean(link) for link in links if link))
    lines = {
        "the delivery id": delivery_id,
        "the event": event,
        "the external id": external_id,
        "the actor": actor,
        "the sender": sender,
        "the repository": repository,
        "the title": title,
        **{f"label {index}": label for index, label in enumerate(labels)},
    }
    try:
        for what, value in lines.items():
            check_line(value, what=what)
        check_line(body, what="the body", keep=BODY_KEEPS)
    except TextRefused as err:
        raise DeliveryInvalid(
            delivery.source, clean(delivery_id, MAX_ID), str(err), code="control-characters"
        ) from None
    return TriggerEvent(
        source=delivery.source,
        kind=kind,
        external_id=clean(external_id, MAX_ID),
        actor=clean(actor, MAX_ID) or "(unknown)",
        repository=clean(repository, 1000),
        title=clean(title, 1000) or "(untitled)",
        body=clean(body),
        labels=tuple(clean(label, 100) for label in labels),
        links=links_found,
        received_at=delivery.received_at,
        payload_digest=delivery.digest,
        delivery_id=clean(delivery_id, MAX_ID),
        event=clean(event, 128),
        autonomous=autonomous,
        attributes={key: clean(value, 1000) for key, value in (attributes or {}).items()},
        sender_kind=sender_kind,
        sender=clean(sender, MAX_ID),
    )
