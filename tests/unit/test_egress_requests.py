"""How the egress proxy reads a request head: the target, the Host header, the body's length,
and what it forwards; anything it cannot read exactly is refused, never guessed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codefactory.sandbox.proxy import ProxyRequest, Refusal, parse_request


def head(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def refusal(data: bytes) -> Refusal:
    with pytest.raises(Refusal) as caught:
        parse_request(data)
    return caught.value


def test_a_plain_request_is_forwarded_in_origin_form_with_one_host_and_connection_close() -> None:
    request = parse_request(
        head(
            "GET http://Models.Test/v1/chat?x=1 HTTP/1.1",
            "Host: models.test:80",
            "User-Agent: t",
            "Proxy-Authorization: Basic c2VjcmV0",
            "Proxy-Connection: keep-alive",
            "Connection: keep-alive, X-Hop",
            "X-Hop: 1",
            "Keep-Alive: 5",
            "Upgrade: websocket",
            "Accept: */*",
        )
    )
    assert (request.method, request.host, request.port, request.spelled) == (
        "GET",
        "models.test",
        80,
        "Models.Test",
    )
    assert request.forward == head(
        "GET /v1/chat?x=1 HTTP/1.1",
        "Host: models.test",
        "User-Agent: t",
        "Accept: */*",
        "Connection: close",
    )
    assert request.body_length == 0


def test_an_ipv6_target_and_a_port_are_kept_in_the_forwarded_host() -> None:
    request = parse_request(
        head("GET http://[2606:4700::1]:8080 HTTP/1.1", "Host: [2606:4700::1]:8080")
    )
    assert (request.host, request.port) == ("2606:4700::1", 8080)
    assert request.forward == head(
        "GET / HTTP/1.1", "Host: [2606:4700::1]:8080", "Connection: close"
    )


@pytest.mark.parametrize(
    "host", ["models.test", "MODELS.TEST.", "models.test:80", "Models.Test:080"]
)
def test_the_host_header_may_spell_the_target_differently(host: str) -> None:
    assert parse_request(head("GET http://models.test/ HTTP/1.1", f"Host: {host}")).port == 80


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        (["Host: other.test"], "the Host header 'other.test' does not name the request target"),
        (["Host: models.test:8080"], "does not name the request target models.test:80"),
        (["Host: 127.0.0.1"], "does not name"),
        (["Host: "], "does not name"),
        (["Host: models.test@other.test"], "does not name"),
        (["Host: [::1]"], "does not name"),
        ([], "no Host header in an HTTP/1.1 request"),
        (["Host: models.test", "Host: other.test"], "2 Host headers in one request"),
        (["Host: models.test", "host: models.test"], "2 Host headers"),
    ],
)
def test_a_host_header_that_does_not_name_the_target_is_refused(
    lines: list[str], reason: str
) -> None:
    refused = refusal(head("GET http://models.test/ HTTP/1.1", *lines))
    assert refused.status == 403
    assert reason in refused.reason
    assert (refused.request.method, refused.request.host, refused.request.port) == (
        "GET",
        "models.test",
        80,
    )


def test_http_1_0_without_a_host_gets_the_targets() -> None:
    request = parse_request(head("GET http://models.test/ HTTP/1.0"))
    assert request.forward == head("GET / HTTP/1.0", "Host: models.test", "Connection: close")


def test_a_body_is_forwarded_to_its_content_length() -> None:
    request = parse_request(
        head("POST http://models.test/ HTTP/1.1", "Host: models.test", "Content-Length: 12")
    )
    assert request.body_length == 12


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        (["Transfer-Encoding: chunked"], "Transfer-Encoding request body"),
        (["Transfer-Encoding: identity", "Content-Length: 3"], "Transfer-Encoding"),
        (["Content-Length: 3", "Content-Length: 3"], "malformed Content-Length"),
        (["Content-Length: -1"], "malformed Content-Length"),
        (["Content-Length: 0x10"], "malformed Content-Length"),
        (["Content-Length: 1, 1"], "malformed Content-Length"),
    ],
)
def test_a_body_whose_length_is_not_one_plain_number_is_refused(
    lines: list[str], reason: str
) -> None:
    refused = refusal(head("POST http://models.test/ HTTP/1.1", "Host: models.test", *lines))
    assert refused.status == 400
    assert reason in refused.reason
    assert refused.request.host == "models.test"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("GET http://user@models.test/ HTTP/1.1", "it carries userinfo"),
        ("GET http://user:pw@models.test/ HTTP/1.1", "userinfo"),
        ("GET http://models.test#@other.test/ HTTP/1.1", "a fragment"),
        ("GET https://models.test/ HTTP/1.1", "only http:// targets"),
        ("GET /relative HTTP/1.1", "only http:// targets"),
        ("GET http://models.test:0/ HTTP/1.1", "not a port number"),
        ("GET http://models.test:65536/ HTTP/1.1", "not a port number"),
        ("GET http://models.test:8o/ HTTP/1.1", "not a port number"),
        ("GET http://::1/ HTTP/1.1", "must be in brackets"),
        ("GET http://[127.0.0.1]/ HTTP/1.1", "malformed request target"),
        ("GET http://models.test\t.evil/ HTTP/1.1", "control characters"),
        ("GET http:///x HTTP/1.1", "not a host name"),
        ("GET http://exa%2emple/ HTTP/1.1", "not a host name"),
    ],
)
def test_a_target_that_is_not_a_plain_http_url_is_refused(line: str, reason: str) -> None:
    refused = refusal(head(line, "Host: models.test"))
    assert refused.status in (400, 403)
    assert reason in refused.reason
    assert refused.request.method == "GET"


@pytest.mark.parametrize(
    "target",
    [
        "models.test",
        "models.test:",
        "models.test:0",
        "models.test:65536",
        "models.test:99999",
        "models.test:https",
        "models.test:-1",
        "models.test:+443",
        "models.test:\u00b3",  # a digit to str.isdigit, not to a port
        "::1:443",
        "[::1]443",
        "[::1",
        "[127.0.0.1]:443",
        "bad_%host:443",
        "1.2.3.4.5:443",
    ],
)
def test_a_connect_target_without_a_host_and_a_port_in_range_is_refused(target: str) -> None:
    refused = refusal(head(f"CONNECT {target} HTTP/1.1", "Host: x"))
    assert refused.status == 400
    assert "malformed CONNECT target" in refused.reason
    assert refused.request.method == "CONNECT"


def test_a_connect_target_is_read_canonically() -> None:
    request = parse_request(head("CONNECT [::ffff:127.0.0.1]:443 HTTP/1.1"))
    assert request == ProxyRequest(
        method="CONNECT", host="127.0.0.1", port=443, spelled="[::ffff:127.0.0.1]"
    )
    assert parse_request(head("CONNECT 0x7f.1:8080 HTTP/1.1")).host == "127.0.0.1"


@pytest.mark.parametrize(
    "data",
    [
        head("GET http://models.test/ HTTP/1.1", "Host: models.test\nHost: other.test"),
        head("GET http://models.test/ HTTP/1.1", "Host: models.test\rX: y"),
        head("GET http://models.test/ HTTP/1.1", "Host: models.test", "X: a\x00b"),
        head("GET http://models.test/ HTTP/1.1", "Host : models.test"),
        head("GET http://models.test/ HTTP/1.1", "Host: models.test", " folded"),
        head("GET http://models.test/ HTTP/1.1", "no colon"),
        head("GET http://models.test/  HTTP/1.1", "Host: models.test"),
        head("GET http://models.test/ HTTP/2.0", "Host: models.test"),
        head("GET http://models.test/"),
        head("G(T http://models.test/ HTTP/1.1"),
        head("", "GET http://models.test/ HTTP/1.1"),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    ],
)
def test_a_head_that_cannot_be_read_exactly_is_refused(data: bytes) -> None:
    assert refusal(data).status == 400


@given(st.binary(max_size=300))
def test_any_bytes_either_parse_or_are_refused(data: bytes) -> None:
    try:
        parse_request(data + b"\r\n\r\n")
    except Refusal as refused:
        assert refused.status in (400, 403)


REQUEST_PIECES = st.sampled_from(
    ["GET", "CONNECT", "POST", " ", "http://", "https://", "models.test", "[::1]", "127.1", ":",
     "80", "0", "/", "@", "#", "?", "\r\n", "\n", "\r", "\t", "Host", "Host: ", "HTTP/1.1",
     "Content-Length: ", "Transfer-Encoding: chunked", "5", "%", "\x00", "\xff", "."]
)  # fmt: skip


@given(st.lists(REQUEST_PIECES, max_size=30))
def test_request_like_heads_either_parse_or_are_refused(pieces: list[str]) -> None:
    data = "".join(pieces).encode("latin-1") + b"\r\n\r\n"
    try:
        request = parse_request(data)
    except Refusal as refused:
        assert refused.status in (400, 403)
    else:
        assert request.method and request.host and 0 < request.port < 65536
