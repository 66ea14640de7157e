"""RFC 8785 (JSON Canonicalization Scheme) encoding: the bytes every audit leaf is made of.

`canonical_json` writes any JSON value; `is_canonical` checks stored text quickly, since
`audit verify` reads every row of the log and must stay fast over a million events.
"""

from __future__ import annotations

import json
import json.scanner
import math
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

# Characters outside the Basic Multilingual Plane: the only ones where sorting keys by code
# point (what `json.dumps` does) and by UTF-16 code units (RFC 8785 §3.2.3) can disagree.
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
# The characters RFC 8785 §3.2.2.2 escapes in a string; any other string is written verbatim.
_ESCAPED = re.compile(r'[\x00-\x1f"\\]')


class _FloatSeen(Exception):
    """The text holds a float: the fast check cannot decide it."""


def _no_floats(literal: str) -> float:
    raise _FloatSeen(literal)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# One decoder, one encoder for the whole process (both are stateless between calls). The C
# scanner calls `parse_float` only when it meets a float, so text without floats pays nothing.
# `make_scanner` takes the decoder whose hooks it calls (typeshed types it as itself).
_DECODER: Any = json.JSONDecoder(parse_float=_no_floats, parse_constant=_no_constants)
_SCAN: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(_DECODER)
_SORTED_COMPACT = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
if _c_make_encoder is not None:  # CPython's C encoder, built once instead of once per call
    _chunks = _c_make_encoder(
        None, _SORTED_COMPACT.default, json.encoder.encode_basestring,
        None, ":", ",", True, False, True,
    )  # fmt: skip

    def _sorted_compact(value: Any) -> str:
        return "".join(_chunks(value, 0))
else:  # pragma: no cover - Pythons without the _json accelerator

    def _sorted_compact(value: Any) -> str:
        return _SORTED_COMPACT.encode(value)


def canonical_json(obj: Any) -> bytes:
    """`obj` as RFC 8785 canonical JSON: sorted keys, no whitespace, UTF-8.

    Raises ValueError for NaN, infinities and lone surrogates, TypeError for values JSON has
    no form for (sets, datetimes, non-string keys). Integers are written exactly; keep them
    within ±2**53 so that verifiers in other languages read the same number.
    """
    return _encode(obj).encode("utf-8")


def is_canonical(text: str) -> bool:
    """Whether `text` is a JSON value written exactly as `canonical_json` writes it.

    Raises ValueError if it is not JSON at all. Without floats and characters beyond the
    BMP, `json.dumps` with sorted keys writes exactly the RFC 8785 form (same string
    escapes, same integers, same key order), so the C encoder decides; otherwise the slow,
    exact encoder does.
    """
    if text.isascii() or _ASTRAL.search(text) is None:
        try:
            value, end = _SCAN(text, 0)
        except (_FloatSeen, StopIteration):
            pass  # a float, or no JSON value at the start: the general path decides or raises
        else:
            if end == len(text):
                return _sorted_compact(value) == text
    floats = False

    def parse_float(literal: str) -> float:
        nonlocal floats
        floats = True
        return float(literal)

    value = json.loads(text, parse_float=parse_float, parse_constant=_no_constants)
    if not floats and _ASTRAL.search(text) is None:
        fast = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return fast == text
    try:
        return _encode(value) == text
    except ValueError:
        return False


def is_canonical_object(text: str) -> bool:
    """Whether `text` is a JSON object written exactly as `canonical_json` writes it; False
    for anything else (another value, not JSON, not text). Never raises.

    `is_canonical` with its common case inlined: the hot path of `audit verify`.
    """
    if not isinstance(text, str) or not text.startswith("{"):
        return False
    if text.isascii() or _ASTRAL.search(text) is None:
        try:
            value, end = _SCAN(text, 0)
        except (_FloatSeen, StopIteration):
            pass  # a float: the general path decides
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
            return False
        else:
            return end == len(text) and _sorted_compact(value) == text
    try:
        return is_canonical(text)
    except (ValueError, RecursionError):
        return False


def all_canonical_objects(texts: Sequence[str]) -> bool:
    """Whether every one of `texts` is a canonical JSON object (`is_canonical_object`); False
    when one is not, or may not be (ask each then).

    `is_canonical_object`'s common case in one loop over a batch of texts: texts with floats
    or characters beyond the BMP are left to it, where the exact encoder decides. Each parsed
    value is dropped before the next text is read, so a batch leaves nothing to collect.
    """
    try:
        joined = "".join(texts)
    except TypeError:  # not all of them text (the store may hold anything)
        return False
    if not joined.isascii() and _ASTRAL.search(joined) is not None:
        return False
    scan, write = _SCAN, _sorted_compact
    try:
        for text in texts:
            value, end = scan(text, 0)
            if end != len(text) or type(value) is not dict or write(value) != text:
                return False
    except (_FloatSeen, StopIteration, ValueError, RecursionError):
        return False
    return True


def json_string(value: str) -> str:
    """One JSON string as RFC 8785 writes it (§3.2.2.2: minimal escapes, UTF-8 kept).

    A string without quotes, backslashes or control characters is written as it is; any other
    goes through the C encoder. A lone surrogate is kept, so encoding the result as UTF-8
    fails (UnicodeEncodeError, a ValueError).
    """
    if isinstance(value, str) and _ESCAPED.search(value) is None:
        return '"' + value + '"'
    return json.dumps(value, ensure_ascii=False)


def _encode(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, str):
        return json_string(value)
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, Mapping):
        return _object(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode(item) for item in value) + "]"
    raise TypeError(f"{type(value).__name__} has no JSON form; convert it before recording")


def _object(mapping: Mapping[Any, Any]) -> str:
    for key in mapping:
        if not isinstance(key, str):
            raise TypeError(f"JSON object keys must be strings, not {type(key).__name__}")
    # RFC 8785 §3.2.3: members sorted by the UTF-16 code units of their names.
    keys = sorted(mapping, key=lambda key: key.encode("utf-16-be"))
    return "{" + ",".join(_encode(key) + ":" + _encode(mapping[key]) for key in keys) + "}"


def _number(value: float) -> str:
    """A finite float as ECMAScript's Number.prototype.toString writes it (RFC 8785 §3.2.2.3)."""
    if not math.isfinite(value):
        raise ValueError(f"{value!r} is not a JSON number")
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    # repr() gives the shortest digits that round-trip; Decimal splits them from the exponent.
    parts = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(str(digit) for digit in parts.digits)
    assert isinstance(parts.exponent, int)
    k, n = len(digits), parts.exponent + len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    mantissa = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{sign}{mantissa}e{'+' if n > 0 else '-'}{abs(n - 1)}"
