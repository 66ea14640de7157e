"""Cassettes in vcrpy's own format: what vcrpy loads is what the gateway saw, byte for byte."""

from __future__ import annotations

import stat
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from vcr.serialize import deserialize
from vcr.serializers import yamlserializer

from codefactory.engines.gateway.cassette import CassetteWriter, Interaction


def interaction(request_body: bytes, response_body: bytes) -> Interaction:
    return Interaction(
        method="POST",
        uri="https://api.example.com/v1/chat/completions",
        request_headers={
            "Authorization": "Bearer sk",
            "x-api-key": "sk",
            "api-key": "sk",
            "content-type": "application/json",
        },
        request_body=request_body,
        status=200,
        reason="OK",
        response_headers=[("content-type", "text/event-stream"), ("x-rate", "1"), ("x-rate", "2")],
        response_body=response_body,
    )


def test_appended_interactions_load_in_vcrpy(tmp_path: Path) -> None:
    writer = CassetteWriter(tmp_path / "traffic")
    sse = b'data: {"choices": []}\n\ndata: [DONE]\n\n'
    path = writer.append("run-1", interaction(b'{"model": "m"}', sse))
    writer.append("run-1", interaction(b"\xff\xfe binary", b"\x00\x01"))
    assert path == tmp_path / "traffic" / "run-1.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    text = path.read_text()
    assert text.startswith("version: 1\ninteractions:\n") and "Bearer sk" not in text
    assert "api-key" not in text.lower()
    requests, responses = deserialize(text, yamlserializer)
    assert [r.body for r in requests] == [b'{"model": "m"}', b"\xff\xfe binary"]
    assert dict(requests[0].headers) == {"content-type": "application/json"}
    assert responses[0] == {
        "status": {"code": 200, "message": "OK"},
        "headers": {"content-type": ["text/event-stream"], "x-rate": ["1", "2"]},
        "body": {"string": sse},
    }
    assert responses[1]["body"]["string"] == b"\x00\x01"


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200), st.text(max_size=200))
def test_bodies_round_trip_byte_for_byte(tmp_path_factory, raw: bytes, text: str) -> None:
    writer = CassetteWriter(tmp_path_factory.mktemp("c"))
    body = text.encode()
    path = writer.append("r", interaction(raw, body))
    requests, responses = deserialize(path.read_text(), yamlserializer)
    assert requests[0].body == raw or (requests[0].body is None and raw == b"")
    assert responses[0]["body"]["string"] == body
