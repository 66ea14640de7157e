"""JSON from outside the factory read as I-JSON (RFC 7493): a text with an unpaired
surrogate (`"\\ud800"`: valid JSON syntax, but no Unicode character) is refused where it is
read, not met later where the factory records it.

The audit log's leaves are canonical JSON (RFC 8785), which has no form for such a string:
an event quoting it cannot be recorded (`EventNotRecordable`), so a vendor's answer holding
one (a ServiceNow approval, a forge's message) would stop the step that quotes it every time
it is tried. Read here, it is the vendor's malformed answer, reported as such.
"""

from __future__ import annotations

import json
import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")
"""A surrogate code point left in a decoded string: the JSON decoder joins every escaped
pair into one character, so what remains was unpaired."""


class NotIJson(ValueError):
    """The text is JSON but not I-JSON: it holds an unpaired surrogate."""


def loads(text: str | bytes) -> Any:
    """`json.loads(text)`, refused with NotIJson (a ValueError) when a string or member name
    in it holds an unpaired surrogate (RFC 7493 §2.1); json.JSONDecodeError (a ValueError) or
    UnicodeDecodeError when it is not JSON at all."""
    value = json.loads(text)
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise NotIJson("a string holds an unpaired surrogate (RFC 7493 §2.1: not I-JSON)")
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return value
