"""Outside JSON read as I-JSON: an unpaired surrogate, in a value or a member name, at any
depth, is refused where it is read; paired ones (an emoji) and ordinary JSON pass."""

from __future__ import annotations

import json

import pytest

from codefactory.i_json import NotIJson, loads


@pytest.mark.parametrize(
    "text",
    [
        r'"\ud800"',
        r'{"approval": "approved\udfff"}',
        r'{"k\ud83d": 1}',
        r'[[[[{"deep": ["x", "\udc00y"]}]]]]',
        r'"\ude00\ud83d"',  # a low surrogate before a high one: two unpaired
    ],
)
def test_an_unpaired_surrogate_is_refused(text: str) -> None:
    with pytest.raises(NotIJson, match="unpaired surrogate"):
        loads(text)
    assert json.loads(text) is not None  # plain JSON takes it: the check is ours


@pytest.mark.parametrize(
    "text",
    [r'"\ud83d\ude00"', '{"a": [1, 2.5, null, true, "ünï"]}', b'{"state": "approved"}', "[]"],
)
def test_i_json_passes_as_json_reads_it(text: str | bytes) -> None:
    assert loads(text) == json.loads(text)


def test_what_is_not_json_fails_as_json_fails() -> None:
    with pytest.raises(json.JSONDecodeError):
        loads("{not json")
    with pytest.raises(ValueError):
        loads(b"\xff")
