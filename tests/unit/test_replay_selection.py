"""Which step answers a request: tool rounds answered, side requests, conversations, the end
of a script, attempt faults and strict mode, in each protocol's request shape."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from codefactory.engines.replay import Script, load_transcript
from codefactory.engines.replay.selection import FINISHED_TEXT, NEUTRAL_TEXT, ScriptPlayer
from codefactory.engines.replay.turn import ErrorAnswer, ErrorKind, Turn
from codefactory.engines.replay.wire import InvalidRequest, Protocol, parse_request

READ = {"name": "read_file", "arguments": {"path": "a.py"}}
EDIT = {"name": "edit_file", "arguments": {"path": "a.py", "old": "-", "new": "+"}}


def request_body(
    protocol: Protocol, prompt: str, results: list[str], *, tools: bool = True
) -> dict[str, Any]:
    """A request in `protocol`'s real shape carrying `results` as answered tool calls."""
    if protocol is Protocol.CHAT:
        messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
        for n, text in enumerate(results):
            call = {"id": f"c{n}", "type": "function", "function": {"name": "x", "arguments": "{}"}}
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            messages.append({"role": "tool", "tool_call_id": f"c{n}", "content": text})
        declared = [{"type": "function", "function": {"name": "read_file", "parameters": {}}}]
        return {"model": "m", "messages": messages, **({"tools": declared} if tools else {})}
    if protocol is Protocol.RESPONSES:
        items: list[dict[str, Any]] = [
            {"role": "user", "content": [{"type": "input_text", "text": prompt}]}
        ]
        for n, text in enumerate(results):
            items.append(
                {"type": "function_call", "call_id": f"c{n}", "name": "x", "arguments": ""}
            )
            items.append({"type": "function_call_output", "call_id": f"c{n}", "output": text})
        declared = [{"type": "function", "name": "read_file", "parameters": {}}]
        return {"model": "m", "input": items, **({"tools": declared} if tools else {})}
    turns: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
    for n, text in enumerate(results):
        use = {"type": "tool_use", "id": f"c{n}", "name": "x", "input": {}}
        turns.append({"role": "assistant", "content": [use]})
        block = {
            "type": "tool_result",
            "tool_use_id": f"c{n}",
            "content": [{"type": "text", "text": text}],
        }
        turns.append({"role": "user", "content": [block]})
    declared = [{"name": "read_file", "input_schema": {"type": "object"}}]
    return {
        "model": "m",
        "max_tokens": 10,
        "messages": turns,
        **({"tools": declared} if tools else {}),
    }


def player(tmp_path: Path, steps: list[Any], *, strict: bool = False, **extra: Any) -> ScriptPlayer:
    path = tmp_path / "script.json"
    path.write_text(json.dumps({"steps": steps, **extra}))
    script = load_transcript(path)
    assert isinstance(script, Script)
    return ScriptPlayer(script, strict=strict)


def ask(
    chosen: ScriptPlayer,
    protocol: Protocol,
    results: list[str],
    *,
    prompt: str = "fix",
    tools: bool = True,
) -> Turn | ErrorAnswer:
    body = json.dumps(request_body(protocol, prompt, results, tools=tools)).encode()
    return chosen.answer(parse_request(protocol, body))


def served(answer: Turn | ErrorAnswer) -> int | None:
    assert isinstance(answer, Turn), answer
    return answer.step


PROTOCOLS = list(Protocol)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_step_is_the_number_of_tool_rounds_answered(tmp_path: Path, protocol: Protocol) -> None:
    script = player(tmp_path, [{"tool": READ}, {"tools": [READ, EDIT]}, {"text": "done"}])
    assert served(ask(script, protocol, [])) == 0
    assert served(ask(script, protocol, ["r0"])) == 1
    # One of the two calls of step 1 answered: step 1 is not complete, it is served again.
    assert served(ask(script, protocol, ["r0", "r1"])) == 1
    assert served(ask(script, protocol, ["r0", "r1", "r2"])) == 2
    # Arrival order does not matter: an earlier request asked again gets its step again.
    assert served(ask(script, protocol, [])) == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_request_declaring_no_tools_gets_a_neutral_answer_and_moves_nothing(
    tmp_path: Path, protocol: Protocol
) -> None:
    script = player(tmp_path, [{"fault": "server_error"}, {"tool": READ}, {"text": "done"}])
    side = ask(script, protocol, [], prompt="Write a title", tools=False)
    assert isinstance(side, Turn) and side.text == NEUTRAL_TEXT and side.step is None
    assert side.usage is not None  # every answer reports usage unless a fault removes it
    # The fault was not consumed by the side request, nor the conversation registered.
    first = ask(script, protocol, [])
    assert isinstance(first, ErrorAnswer) and first.kind is ErrorKind.SERVER_ERROR
    assert served(ask(script, protocol, [])) == 1


def test_each_new_conversation_plays_the_next_segment_in_turn(tmp_path: Path) -> None:
    steps = [{"tool": READ}, {"text": "round one"}, {"tool": EDIT}, {"text": "round two"}]
    script = player(tmp_path, steps)
    chat = Protocol.CHAT
    assert served(ask(script, chat, [], prompt="ticket")) == 0
    assert served(ask(script, chat, ["r"], prompt="ticket")) == 1
    assert served(ask(script, chat, [], prompt="ticket + feedback")) == 2
    assert served(ask(script, chat, ["r"], prompt="ticket + feedback")) == 3
    # The first conversation asked again still plays its own segment.
    assert served(ask(script, chat, ["r"], prompt="ticket")) == 1
    # A third conversation starts over (a benchmark repeating the same run).
    assert served(ask(script, chat, [], prompt="another run")) == 0


def test_past_the_last_step_a_script_says_it_finished(tmp_path: Path) -> None:
    script = player(tmp_path, [{"tool": READ}])
    answer = ask(script, Protocol.MESSAGES, ["r"])
    assert isinstance(answer, Turn) and answer.text == FINISHED_TEXT and answer.calls == ()


def test_repeat_last_serves_the_last_step_forever_with_fresh_call_ids(tmp_path: Path) -> None:
    script = player(tmp_path, [{"tool": READ}], repeat_last=True)
    ids = set()
    for answered in range(5):
        answer = ask(script, Protocol.RESPONSES, ["r"] * answered)
        assert isinstance(answer, Turn) and answer.step == 0
        assert [c.name for c in answer.calls] == ["read_file"]
        ids.add(answer.calls[0].id)
    assert len(ids) == 5


def test_an_attempt_fault_is_served_times_then_the_same_request_gets_the_next_step(
    tmp_path: Path,
) -> None:
    script = player(
        tmp_path, [{"fault": "rate_limit", "retry_after": 3, "times": 2}, {"tool": READ}]
    )
    for _ in range(2):
        answer = ask(script, Protocol.CHAT, [])
        assert isinstance(answer, ErrorAnswer)
        assert (answer.kind, answer.retry_after, answer.step) == (ErrorKind.RATE_LIMIT, 3, 0)
    assert served(ask(script, Protocol.CHAT, [])) == 1
    assert served(ask(script, Protocol.CHAT, [])) == 1


def test_fault_counters_are_exact_under_concurrent_requests(tmp_path: Path) -> None:
    script = player(tmp_path, [{"fault": "server_error", "times": 7}, {"text": "ok"}])
    answers: list[Turn | ErrorAnswer] = []
    lock = threading.Lock()

    def call() -> None:
        answer = ask(script, Protocol.CHAT, [])
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=call) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(isinstance(a, ErrorAnswer) for a in answers) == 7


def test_truncated_is_a_turn_marked_cut_and_then_passed_over(tmp_path: Path) -> None:
    script = player(tmp_path, [{"fault": "truncated", "tool": READ}, {"text": "done"}])
    cut = ask(script, Protocol.CHAT, [])
    assert isinstance(cut, Turn) and cut.truncated and cut.calls[0].name == "read_file"
    assert served(ask(script, Protocol.CHAT, [])) == 1


def test_call_faults_malformed_arguments_and_an_undeclared_tool(tmp_path: Path) -> None:
    steps = [
        {"fault": "malformed_tool_json", "tool": READ},
        {"fault": "unknown_tool", "tool": {"name": "read_file"}},
        {"fault": "no_usage", "text": "done"},
    ]
    script = player(tmp_path, steps)
    malformed = ask(script, Protocol.CHAT, [])
    assert isinstance(malformed, Turn)
    with pytest.raises(json.JSONDecodeError):
        json.loads(malformed.calls[0].arguments)
    unknown = ask(script, Protocol.CHAT, ["r"])
    assert isinstance(unknown, Turn)
    # read_file is declared by the request, so the call names a tool it did not declare.
    assert unknown.calls[0].name not in {"read_file"} and unknown.calls[0].name.startswith(
        "read_file"
    )
    last = ask(script, Protocol.CHAT, ["r", "r"])
    assert isinstance(last, Turn) and last.text == "done" and last.usage is None


def test_usage_is_the_scripts_or_estimated_from_sizes(tmp_path: Path) -> None:
    script = player(
        tmp_path,
        [{"tool": READ, "usage": {"input_tokens": 7, "output_tokens": 3}}, {"text": "x" * 400}],
    )
    given = ask(script, Protocol.CHAT, [])
    assert isinstance(given, Turn) and given.usage is not None
    assert (given.usage.input_tokens, given.usage.output_tokens) == (7, 3)
    estimated = ask(script, Protocol.CHAT, ["r"])
    assert isinstance(estimated, Turn) and estimated.usage is not None
    assert estimated.usage.output_tokens == 100 and estimated.usage.input_tokens > 10


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_strict_mode_checks_the_result_the_next_request_carries(
    tmp_path: Path, protocol: Protocol
) -> None:
    steps = [{"tool": READ, "expect_result": "def add"}, {"text": "done"}]
    strict = player(tmp_path, steps, strict=True)
    assert served(ask(strict, protocol, ["def add(a, b): ..."])) == 1
    mismatch = ask(strict, protocol, ["No such file: a.py"])
    assert isinstance(mismatch, ErrorAnswer) and mismatch.kind is ErrorKind.MISMATCH
    assert mismatch.message.startswith("replay mismatch at step 0: ")
    assert "'def add'" in mismatch.message and "No such file" in mismatch.message
    lenient = player(tmp_path, steps, strict=False)
    assert served(ask(lenient, protocol, ["No such file: a.py"])) == 1


@pytest.mark.parametrize(
    ("protocol", "body", "detail"),
    [
        (Protocol.CHAT, b"not json", "not JSON"),
        (Protocol.CHAT, b"[]", "must be a JSON object"),
        (Protocol.MESSAGES, b'{"messages": "hi"}', "`messages` must be a list"),
        (Protocol.RESPONSES, b'{"input": "hi", "previous_response_id": "resp_1"}', "full input"),
    ],
)
def test_unreadable_requests_are_refused(protocol: Protocol, body: bytes, detail: str) -> None:
    with pytest.raises(InvalidRequest, match=detail):
        parse_request(protocol, body)


def test_the_request_facts_read_from_each_protocol() -> None:
    chat = parse_request(
        Protocol.CHAT,
        json.dumps(
            {
                **request_body(Protocol.CHAT, "p", ["a", "b"]),
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        ).encode(),
    )
    assert (chat.stream, chat.include_usage, chat.results) == (True, True, ("a", "b"))
    assert chat.tools == frozenset({"read_file"}) and chat.conversation == "p"
    responses = parse_request(
        Protocol.RESPONSES, b'{"input": "just text", "tools": [{"type": "web_search"}]}'
    )
    assert responses.conversation == "just text" and responses.tools  # a hosted tool counts
    messages = parse_request(
        Protocol.MESSAGES, json.dumps(request_body(Protocol.MESSAGES, "p", ["x"])).encode()
    )
    assert messages.results == ("x",) and messages.model == "m" and not messages.stream


def test_the_shipped_fault_script_plays_in_the_documented_order() -> None:
    script = load_transcript(Path(__file__).parents[1] / "fixtures" / "transcripts" / "faults.json")
    assert isinstance(script, Script)
    chosen = ScriptPlayer(script)
    kinds = [ask(chosen, Protocol.CHAT, []) for _ in range(5)]
    assert [k.kind for k in kinds[:4] if isinstance(k, ErrorAnswer)] == [
        ErrorKind.RATE_LIMIT,
        ErrorKind.RATE_LIMIT,
        ErrorKind.SERVER_ERROR,
        ErrorKind.OVERLOADED,
    ]
    call = kinds[4]
    assert isinstance(call, Turn) and call.calls[0].name == "read_file"
    cut = ask(chosen, Protocol.CHAT, ["code"])
    assert isinstance(cut, Turn) and cut.truncated
    last = ask(chosen, Protocol.CHAT, ["code"])
    assert isinstance(last, Turn) and last.text == "Nothing to change." and last.usage is None
