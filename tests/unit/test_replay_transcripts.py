"""Loading transcripts: detection by content, and a precise error for each malformed shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codefactory.engines.replay import (
    Cassette,
    Fault,
    Script,
    TranscriptError,
    Usage,
    load_transcript,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "transcripts"

CASSETTE = """\
interactions:
- request:
    body: '{"model": "gpt-4.1-mini", "messages": []}'
    headers: {content-type: [application/json]}
    method: POST
    uri: https://api.example.com/v1/chat/completions
  response:
    status: {code: 200, message: OK}
    headers: {content-type: [application/json], content-length: ['2'], x-request-id: [abc]}
    body: {string: '{}'}
- request: {body: null, headers: {}, method: GET, uri: 'https://api.example.com/v1/models'}
  response:
    status: {code: 200, message: OK}
    headers: {}
    body: {string: !!binary "eyJkYXRhIjogW119"}
version: 1
"""


def write(tmp_path: Path, text: str, name: str = "t.txt") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", ["two_tool_fix.json", "looping.json", "faults.json"])
def test_the_shipped_scripts_load(name: str) -> None:
    script = load_transcript(FIXTURES / name)
    assert isinstance(script, Script)
    assert script.engine == "agent:pydantic-ai"
    assert script.model == "gpt-4.1-mini"


def test_a_script_keeps_its_steps_in_order_with_their_options() -> None:
    script = load_transcript(FIXTURES / "two_tool_fix.json")
    assert isinstance(script, Script)
    first, second, last = script.steps
    assert [c.name for c in first.calls] == ["read_file"]
    assert first.calls[0].arguments == {"path": "src/calc.py"}
    assert first.expect_result == "return a - b"
    assert second.usage == Usage(input_tokens=900, output_tokens=40)
    assert last.text is not None and last.calls == ()
    assert script.segments == (range(0, 3),)


def test_fault_steps_carry_their_kind_times_and_retry_after() -> None:
    script = load_transcript(FIXTURES / "faults.json")
    assert isinstance(script, Script)
    rate_limit, server_error, *_, truncated, no_usage = script.steps
    assert (rate_limit.fault, rate_limit.times, rate_limit.retry_after) == (Fault.RATE_LIMIT, 2, 0)
    assert server_error.fault is Fault.SERVER_ERROR and server_error.times == 1
    assert truncated.fault is Fault.TRUNCATED and truncated.text  # a default text to cut
    assert no_usage.fault is Fault.NO_USAGE and no_usage.text == "Nothing to change."


def test_text_steps_split_a_script_into_conversations(tmp_path: Path) -> None:
    steps = [{"tool": {"name": "a"}}, {"text": "one"}, {"tool": {"name": "b"}}, {"text": "two"}]
    script = load_transcript(write(tmp_path, json.dumps({"steps": steps})))
    assert isinstance(script, Script)
    assert script.segments == (range(0, 2), range(2, 4))
    assert script.model == "replay"  # no model named


def test_a_cassette_is_told_by_its_interactions_whatever_its_name(tmp_path: Path) -> None:
    cassette = load_transcript(write(tmp_path, CASSETTE, "recording.json"))
    assert isinstance(cassette, Cassette)
    post, get = cassette.interactions
    assert (post.method, post.path, post.status) == ("POST", "/v1/chat/completions", 200)
    assert ("content-length", "2") not in post.headers  # framing is the server's own
    assert ("x-request-id", "abc") in post.headers
    assert get.body == b"" and get.content == b'{"data": []}'  # !!binary decoded
    assert cassette.models == ("gpt-4.1-mini",)


SCRIPT_ERRORS = [
    ([], None, "a script is a JSON object"),
    ({"steps": []}, None, "`steps` must be a non-empty list"),
    ({"steps": [{"text": "x"}], "stesp": 1}, None, "unknown keys ['stesp']"),
    ({"steps": [{"text": "x"}], "repeat_last": "yes"}, None, "`repeat_last` must be true"),
    ({"steps": [{"text": "x"}], "model": 4}, None, "`model` must be a string"),
    ({"steps": [{"text": "x"}, "hello"]}, 1, "a step is a JSON object"),
    ({"steps": [{}]}, 0, "a step needs `tool`, `tools`, `text` or `fault`"),
    ({"steps": [{"text": "x", "tool": {"name": "a"}}]}, 0, "give one of"),
    ({"steps": [{"tool": {"arguments": {}}}]}, 0, "`tool`.name must be a non-empty string"),
    ({"steps": [{"tool": {"name": "a", "arguments": []}}]}, 0, "arguments must be a JSON object"),
    ({"steps": [{"tool": {"name": "a", "args": {}}}]}, 0, "unknown keys ['args']"),
    ({"steps": [{"tools": []}]}, 0, "`tools` must be a non-empty list"),
    ({"steps": [{"tools": [{"name": "a"}, 3]}]}, 0, "`tools[1]` must be an object"),
    ({"steps": [{"fault": "meltdown"}]}, 0, "unknown fault 'meltdown'"),
    ({"steps": [{"fault": "rate_limit", "text": "x"}]}, 0, "fault rate_limit takes no `text`"),
    ({"steps": [{"fault": "rate_limit", "times": 0}]}, 0, "`times` must be an integer"),
    ({"steps": [{"text": "x", "times": 2}]}, 0, "`times` applies to"),
    ({"steps": [{"fault": "context_length", "retry_after": 1}]}, 0, "`retry_after` applies"),
    ({"steps": [{"fault": "rate_limit", "retry_after": -1}]}, 0, "`retry_after` must be"),
    ({"steps": [{"fault": "malformed_tool_json", "text": "x"}]}, 0, "needs a `tool`"),
    ({"steps": [{"fault": "malformed_tool_json"}]}, 0, "a step needs"),
    ({"steps": [{"fault": "no_usage", "text": "x", "usage": {}}]}, 0, "takes no `usage`"),
    ({"steps": [{"text": "x", "usage": {"input_tokens": 1}}]}, 0, "`usage` needs integer"),
    ({"steps": [{"text": "x", "usage": {"input_tokens": 1, "output_tokens": -2}}]}, 0, "`usage`"),
    ({"steps": [{"text": "x", "expect_result": "y"}]}, 0, "`expect_result` needs a step with"),
    ({"steps": [{"tool": {"name": "a"}, "expect_result": 3}]}, 0, "`expect_result` must be"),
]


@pytest.mark.parametrize(("document", "step", "detail"), SCRIPT_ERRORS)
def test_a_malformed_script_names_the_file_the_step_and_the_fault(
    tmp_path: Path, document: object, step: int | None, detail: str
) -> None:
    path = write(tmp_path, json.dumps(document))
    if not isinstance(document, dict):  # a list: neither shape
        detail = "neither a script"
    with pytest.raises(TranscriptError) as raised:
        load_transcript(path)
    assert isinstance(raised.value, ValueError)
    assert raised.value.step == step
    assert detail in str(raised.value)
    assert str(path) in str(raised.value)
    if step is not None:
        assert f"step {step}:" in str(raised.value)


CASSETTE_ERRORS = [
    ("interactions: {}\n", None, "an `interactions` list"),
    ("interactions: []\nversion: 2\n", None, "unsupported cassette version 2"),
    ("interactions: [3]\n", 0, "an interaction is a mapping"),
    ("interactions: [{request: {}}]\n", 0, "needs a `request` and a `response`"),
    ("interactions: [{request: {method: GET}, response: {}}]\n", 0, "`uri`"),
    (
        "interactions: [{request: {method: GET, uri: /x}, response: {status: {code: 999}}}]\n",
        0,
        "`response.status.code` must be an HTTP status code",
    ),
    (
        "interactions: [{request: {method: GET, uri: /x}, response: {status: {code: 200}}}]\n",
        0,
        "`response.body.string` is missing",
    ),
    (
        "interactions: [{request: {method: GET, uri: /x, body: 3},"
        " response: {status: {code: 200}, body: {string: ''}}}]\n",
        0,
        "`request.body` must be a string",
    ),
]


@pytest.mark.parametrize(("text", "index", "detail"), CASSETTE_ERRORS)
def test_a_malformed_cassette_names_the_interaction(
    tmp_path: Path, text: str, index: int | None, detail: str
) -> None:
    with pytest.raises(TranscriptError) as raised:
        load_transcript(write(tmp_path, text, "c.yaml"))
    assert raised.value.step == index
    assert detail in str(raised.value)
    if index is not None:
        assert f"interaction {index}:" in str(raised.value)


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ('{"steps": [', "invalid JSON"),
        ("a: [b", "invalid YAML"),
        ("just: a mapping\n", "neither a script"),
    ],
)
def test_unreadable_documents_are_refused(tmp_path: Path, text: str, detail: str) -> None:
    with pytest.raises(TranscriptError, match=detail):
        load_transcript(write(tmp_path, text))


def test_a_missing_file_is_a_transcript_error(tmp_path: Path) -> None:
    with pytest.raises(TranscriptError, match="cannot read the transcript"):
        load_transcript(tmp_path / "absent.json")


def test_every_fault_is_documented() -> None:
    page = (Path(__file__).parents[2] / "docs" / "transcripts.md").read_text()
    for fault in Fault:
        assert f'"fault": "{fault.value}"' in page, fault
