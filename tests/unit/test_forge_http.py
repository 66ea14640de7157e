"""`ForgeHttp`'s retry rules against a real HTTP server on the loopback (a scripted forge
answering each request in turn): what is retried, after how long, and what never is."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from codefactory.review.forges.errors import (
    ForgeForbidden,
    ForgeInvalid,
    ForgeNotFound,
    ForgeRateLimited,
    ForgeUnauthorized,
    ForgeUnavailable,
)
from codefactory.review.forges.http import ForgeHttp
from tests.forge_standins.loopback import Answer, Fault, LoopbackApi, Seen


class ScriptedForge(LoopbackApi):
    """Answers `200 {"ok": true}` to any request carrying `Bearer good`; faults first."""

    def who(self, authorization: str) -> str:
        return "app" if authorization == "Bearer good" else ""

    def unauthorized(self) -> Answer:
        return Answer(401, {"message": "Bad credentials"})

    def fault_answer(self, fault: Fault) -> Answer:
        headers = {"retry-after": fault.retry_after} if fault.retry_after is not None else {}
        if fault.rate_limit:
            headers["x-ratelimit-remaining"] = "0"
        return Answer(fault.status, fault.body or {"message": f"fault {fault.status}"}, headers)

    def handle(self, seen: Seen) -> Answer:
        return Answer(200, {"ok": True, "path": seen.path})


def scripted_forge() -> Iterator[ScriptedForge]:
    """A `ScriptedForge` on the loopback until the generator is closed (a fixture's body)."""
    server = ScriptedForge()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def forge() -> Iterator[ScriptedForge]:
    yield from scripted_forge()


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def client(forge: ScriptedForge, waits: list[float]) -> Iterator[ForgeHttp]:
    http = ForgeHttp(
        forge="testforge",
        base_url=forge.url + "/api",
        max_retries=3,
        max_retry_wait_s=30,
        sleep=waits.append,
    )
    try:
        yield http
    finally:
        http.close()


def get(client: ForgeHttp, auth: str = "Bearer good") -> object:
    return client.request("GET", "repos/x", call="read", auth=auth)


def test_429_is_retried_after_the_seconds_retry_after_gives(
    forge: ScriptedForge, client: ForgeHttp, waits: list[float]
) -> None:
    forge.fail_next(429, retry_after="7")
    assert client.request("POST", "repos/x", call="create", auth="Bearer good") == {
        "ok": True,
        "path": "/api/repos/x",
    }
    assert waits == [7.0] and len(forge.requests) == 2


def test_retry_after_as_an_http_date(
    forge: ScriptedForge, client: ForgeHttp, waits: list[float]
) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    forge.fail_next(503, retry_after=later)
    get(client)
    assert len(waits) == 1 and 15 <= waits[0] <= 20


def test_a_403_rate_limit_is_retried_a_plain_403_is_not(
    forge: ScriptedForge, client: ForgeHttp, waits: list[float]
) -> None:
    forge.fail_next(403, rate_limit=True, retry_after="2")
    get(client)
    assert waits == [2.0]
    forge.fail_next(403)
    with pytest.raises(ForgeForbidden):
        get(client)
    assert waits == [2.0] and len(forge.requests) == 3


def test_5xx_of_a_get_is_retried_with_backoff_until_max_retries(
    forge: ScriptedForge, client: ForgeHttp, waits: list[float]
) -> None:
    forge.fail_next(503, times=4)
    with pytest.raises(ForgeUnavailable) as failed:
        get(client)
    assert failed.value.status == 503 and waits == [1.0, 2.0, 4.0]
    assert len(forge.requests) == 4


def test_5xx_of_a_post_is_not_retried_unless_the_caller_says_it_is_idempotent(
    forge: ScriptedForge, client: ForgeHttp, waits: list[float]
) -> None:
    forge.fail_next(502, retry_after="0")
    with pytest.raises(ForgeUnavailable):
        client.request("POST", "repos/x/pulls", call="open", auth="Bearer good", json_body={})
    assert len(forge.requests) == 1 and waits == []
    forge.fail_next(502, retry_after="0")
    client.request(
        "POST", "repos/x/statuses", call="status", auth="Bearer good", json_body={},
        idempotent=True,
    )  # fmt: skip
    assert len(forge.requests) == 3 and waits == [0.0]


def test_a_500_is_never_retried_and_4xx_answers_are_named_at_once(
    forge: ScriptedForge, client: ForgeHttp, waits: list[float]
) -> None:
    forge.fail_next(500)
    with pytest.raises(ForgeUnavailable):
        get(client)
    with pytest.raises(ForgeUnauthorized, match="Bad credentials"):
        get(client, auth="Bearer revoked")
    forge.fail_next(404)
    with pytest.raises(ForgeNotFound):
        get(client)
    forge.fail_next(422, body={"message": "Validation Failed", "errors": [{"message": "dup"}]})
    with pytest.raises(ForgeInvalid, match="Validation Failed dup"):
        get(client)
    assert waits == [] and len(forge.requests) == 4


def test_a_retry_after_longer_than_allowed_fails_at_once_with_the_wait(
    forge: ScriptedForge, client: ForgeHttp, waits: list[float]
) -> None:
    forge.fail_next(429, retry_after="3600")
    with pytest.raises(ForgeRateLimited) as limited:
        get(client)
    assert limited.value.retry_after_s == 3600.0 and limited.value.kind == "forge-rate-limited"
    assert waits == [] and len(forge.requests) == 1


def test_a_redirect_is_not_followed_and_an_absolute_path_is_refused(
    forge: ScriptedForge, client: ForgeHttp
) -> None:
    forge.fail_next(302, body={"message": "Moved"})
    with pytest.raises(ForgeInvalid):
        get(client)
    assert len(forge.requests) == 1
    with pytest.raises(ValueError, match="relative"):
        client.request("GET", "https://elsewhere.example/x", call="read", auth="Bearer good")


def test_a_refused_connection_is_unavailable(waits: list[float]) -> None:
    server = ScriptedForge()
    url = server.url
    server.stop()
    http = ForgeHttp(forge="testforge", base_url=url, max_retries=1, sleep=waits.append)
    with pytest.raises(ForgeUnavailable, match="unreachable"):
        http.request("GET", "x", call="read", auth="Bearer good")
    http.close()
    assert waits == [1.0]  # a GET is safe to repeat


def test_a_private_ca_bundle_is_loaded_into_a_context(forge: ScriptedForge) -> None:
    import certifi

    http = ForgeHttp(forge="testforge", base_url=forge.url, verify=certifi.where())
    try:  # httpx 0.28 warns on a path (pytest turns warnings into errors)
        assert get(http) == {"ok": True, "path": "/repos/x"}
    finally:
        http.close()


class UnpairedSurrogateForge(ScriptedForge):
    """Answers `200` with JSON whose message holds `\\ud800`: valid syntax, not I-JSON."""

    def handle(self, seen: Seen) -> Answer:
        return Answer(200, {"message": "approved\ud800"})


def test_an_answer_holding_an_unpaired_surrogate_is_a_malformed_answer() -> None:
    """Read as I-JSON (RFC 7493): the forge's answer is refused where it is read, as not
    I-JSON, instead of failing later as an audit event that cannot be recorded."""
    server = UnpairedSurrogateForge()
    http = ForgeHttp(forge="testforge", base_url=server.url + "/api", max_retries=1)
    try:
        with pytest.raises(ForgeUnavailable, match="not I-JSON: .*unpaired surrogate"):
            get(http)
    finally:
        http.close()
        server.stop()
