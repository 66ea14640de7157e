"""`retry_after_s` reads only what RFC 9110 §10.2.3 allows (ASCII digits or an HTTP date);
anything else is no `Retry-After` at all, never a crash in the error path."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from codefactory.review.forges.errors import ForgeRateLimited
from codefactory.review.forges.http import ForgeHttp, retry_after_s
from tests.unit.test_forge_http import ScriptedForge, scripted_forge


def answer(**headers: str) -> httpx.Response:
    """A 429 with `headers` as the wire carries them (bytes: httpx decodes UTF-8, else
    Latin-1, so `²` arrives as `²`)."""
    raw = [(name.encode(), value.encode("utf-8")) for name, value in headers.items()]
    response = httpx.Response(429, headers=raw)
    assert list(response.headers.values()) == list(headers.values())
    return response


@pytest.mark.parametrize("value", ["²", "٣", "1²", "١٢", "-5", "1.5", "soon", "Mon, 99 Foo"])
def test_a_retry_after_that_is_no_ascii_delta_or_date_is_absent(value: str) -> None:
    assert retry_after_s(answer(**{"retry-after": value})) is None


def test_a_superscript_ratelimit_reset_is_absent() -> None:
    assert retry_after_s(answer(**{"x-ratelimit-reset": "²"})) is None


def test_ascii_digits_are_seconds() -> None:
    assert retry_after_s(answer(**{"retry-after": " 42 "})) == 42.0


@pytest.fixture
def forge() -> Iterator[ScriptedForge]:
    yield from scripted_forge()


def test_a_429_with_an_unreadable_retry_after_backs_off_as_if_none_was_given(
    forge: ScriptedForge,
) -> None:
    waits: list[float] = []
    http = ForgeHttp(forge="testforge", base_url=forge.url, max_retries=1, sleep=waits.append)
    try:
        forge.fail_next(429, retry_after="²")
        assert http.request("GET", "repos/x", call="read", auth="Bearer good")["ok"] is True
        assert waits == [1.0]  # the backoff's first step, not a crash
        forge.fail_next(429, retry_after="²", times=2)
        with pytest.raises(ForgeRateLimited) as limited:
            http.request("GET", "repos/x", call="read", auth="Bearer good")
        assert limited.value.retry_after_s is None
    finally:
        http.close()
