"""Which script step answers a request.

The rule (documented for users in `docs/transcripts.md`):

1. A request that declares no tools is a side request (a title, a probe): it gets the
   neutral text `OK` and moves nothing.
2. Steps are split into conversations after each text step. A conversation is told by the
   text of its first user message; the n-th distinct one seen plays segment n modulo the
   number of segments.
3. Within a segment, walk the steps with the request's tool results: a step that made k
   calls is answered when k more results are present, and the walk moves past it; the
   first step not answered is served. An attempt fault (`rate_limit`, `server_error`,
   `overloaded`, `truncated`, `context_length`) is served `times` times, then passed over.
4. Past the segment's end: the last step again when `repeat_last`, else the text
   `script finished`.
"""

from __future__ import annotations

import json
import threading
from collections import Counter

from codefactory.engines.replay.script import Fault, Script, Step, Usage
from codefactory.engines.replay.turn import Call, ErrorAnswer, ErrorKind, Turn
from codefactory.engines.replay.wire import WireRequest

NEUTRAL_TEXT = "OK"
FINISHED_TEXT = "script finished"

_ERRORS = {
    Fault.RATE_LIMIT: ErrorKind.RATE_LIMIT,
    Fault.SERVER_ERROR: ErrorKind.SERVER_ERROR,
    Fault.OVERLOADED: ErrorKind.OVERLOADED,
    Fault.CONTEXT_LENGTH: ErrorKind.CONTEXT_LENGTH,
}


class ScriptPlayer:
    """Chooses the answer to each request from a script; safe to call from many threads.

    State: attempts served per fault step (`times`) and the conversations seen so far."""

    def __init__(self, script: Script, *, strict: bool = False) -> None:
        self.script = script
        self.strict = strict
        self._lock = threading.Lock()
        self._attempts: Counter[int] = Counter()
        self._conversations: dict[str, int] = {}

    def answer(self, request: WireRequest) -> Turn | ErrorAnswer:
        """The turn or error answering `request` (see the module docstring for the rule)."""
        if not request.tools:
            return _text_turn(NEUTRAL_TEXT, request)
        with self._lock:
            segment = self._segment(request.conversation)
            answered = 0
            for index in segment:
                step = self.script.steps[index]
                if step.is_attempt_fault:
                    if self._attempts[index] < step.times:
                        self._attempts[index] += 1
                        return _fault_answer(step, request)
                    continue
                calls = len(step.calls)
                if calls == 0 or len(request.results) - answered < calls:
                    return _step_turn(step, request, answered)
                if mismatch := self._mismatch(step, request.results[answered : answered + calls]):
                    return mismatch
                answered += calls
        return self._past_end(segment, request)

    def _segment(self, conversation: str) -> range:
        segments = self.script.segments
        ordinal = self._conversations.setdefault(conversation, len(self._conversations))
        return segments[ordinal % len(segments)]

    def _mismatch(self, step: Step, results: tuple[str, ...]) -> ErrorAnswer | None:
        if not self.strict or step.expect_result is None:
            return None
        got = "\n".join(results)
        if step.expect_result in got:
            return None
        names = ", ".join(call.name for call in step.calls)
        return ErrorAnswer(
            kind=ErrorKind.MISMATCH,
            step=step.index,
            message=f"replay mismatch at step {step.index}: the result of {names} does not "
            f"contain {step.expect_result!r}; got {got[:200]!r}",
        )

    def _past_end(self, segment: range, request: WireRequest) -> Turn:
        content = [i for i in segment if not self.script.steps[i].is_attempt_fault]
        if self.script.repeat_last and content:
            # Ids from all results so far: each repetition's calls get ids of their own.
            return _step_turn(self.script.steps[content[-1]], request, len(request.results))
        return _text_turn(FINISHED_TEXT, request)


def _fault_answer(step: Step, request: WireRequest) -> Turn | ErrorAnswer:
    if step.fault is Fault.TRUNCATED:
        turn = _step_turn(step, request, 0)
        return Turn(
            text=turn.text, calls=turn.calls, usage=turn.usage, truncated=True, step=step.index
        )
    assert step.fault is not None
    kind = _ERRORS[step.fault]
    return ErrorAnswer(
        kind=kind,
        step=step.index,
        retry_after=step.retry_after,
        message=f"replayed {step.fault} fault at step {step.index}",
    )


def _step_turn(step: Step, request: WireRequest, answered: int) -> Turn:
    calls = tuple(
        Call(
            id=f"s{step.index}n{answered}c{position}",
            name=_undeclared(call.name, request.tools)
            if step.fault is Fault.UNKNOWN_TOOL
            else call.name,
            arguments=_arguments(call.arguments, malformed=step.fault is Fault.MALFORMED_TOOL_JSON),
        )
        for position, call in enumerate(step.calls)
    )
    produced = (step.text or "") + "".join(call.name + call.arguments for call in calls)
    usage = None if step.fault is Fault.NO_USAGE else step.usage or _estimate(request, produced)
    return Turn(text=step.text, calls=calls, usage=usage, step=step.index)


def _text_turn(text: str, request: WireRequest) -> Turn:
    return Turn(text=text, usage=_estimate(request, text))


def _arguments(arguments: object, *, malformed: bool) -> str:
    text = json.dumps(arguments, separators=(",", ":"))
    # Dropping the closing brace leaves text no JSON parser accepts, for any object.
    return text[:-1] if malformed else text


def _undeclared(name: str, declared: frozenset[str]) -> str:
    while name in declared:
        name += "_undeclared"
    return name


def _estimate(request: WireRequest, produced: str) -> Usage:
    # About four bytes a token, the rule of thumb providers give for English and code.
    return Usage(
        input_tokens=max(1, request.size // 4), output_tokens=max(1, len(produced.encode()) // 4)
    )
