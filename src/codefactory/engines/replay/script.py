"""Scripts: a conversation written by hand as JSON, rendered into any wire protocol.

Shape (documented for users in `docs/transcripts.md`)::

    {"engine": "agent:pydantic-ai", "model": "gpt-4.1-mini", "repeat_last": false,
     "steps": [{"tool": {"name": "read_file", "arguments": {"path": "src/x.py"}}},
               {"tools": [{"name": ..., "arguments": {...}}, ...]},
               {"text": "done"},
               {"fault": "rate_limit", "retry_after": 1, "times": 2}]}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from codefactory.engines.replay.errors import TranscriptError


class Fault(StrEnum):
    """A provider misbehaviour a script step injects."""

    RATE_LIMIT = "rate_limit"
    SERVER_ERROR = "server_error"
    OVERLOADED = "overloaded"
    TRUNCATED = "truncated"
    CONTEXT_LENGTH = "context_length"
    MALFORMED_TOOL_JSON = "malformed_tool_json"
    UNKNOWN_TOOL = "unknown_tool"
    NO_USAGE = "no_usage"


ATTEMPT_FAULTS = frozenset(
    {Fault.RATE_LIMIT, Fault.SERVER_ERROR, Fault.OVERLOADED, Fault.TRUNCATED, Fault.CONTEXT_LENGTH}
)
"""Faults consumed per attempt (`times`), after which the same request gets the next step."""

_STEP_KEYS = {"tool", "tools", "text", "fault", "times", "retry_after", "usage", "expect_result"}
_SCRIPT_KEYS = {"engine", "model", "steps", "repeat_last", "description"}
_ERROR_FAULTS = ATTEMPT_FAULTS - {Fault.TRUNCATED}


@dataclass(frozen=True, kw_only=True)
class ToolCall:
    """One tool call a step makes: the engine's own tool name and its JSON arguments."""

    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class Usage:
    """Token counts a response reports."""

    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, kw_only=True)
class Step:
    """One model turn of a script: tool calls, a final text, or a fault."""

    index: int
    calls: tuple[ToolCall, ...] = ()
    text: str | None = None
    fault: Fault | None = None
    times: int = 1
    """Attempts that get an attempt fault before the step is passed over."""
    retry_after: float | None = None
    """Seconds, sent as the `retry-after` header of an error fault."""
    usage: Usage | None = None
    """Reported usage; None: computed from the sizes of request and answer."""
    expect_result: str | None = None
    """Strict mode: text the tool results answering this step's calls must contain."""

    @property
    def is_attempt_fault(self) -> bool:
        return self.fault in ATTEMPT_FAULTS

    @property
    def is_error(self) -> bool:
        """An HTTP error answer (429, 500, 529, 400), no model turn at all."""
        return self.fault in _ERROR_FAULTS


@dataclass(frozen=True, kw_only=True)
class Script:
    """A parsed script; `segments` are the step ranges of successive conversations."""

    path: Path
    engine: str
    model: str
    steps: tuple[Step, ...]
    repeat_last: bool = False

    @property
    def segments(self) -> tuple[range, ...]:
        """Steps split after each text step (the end of a conversation), e.g. the two
        rounds of a run that got check feedback; a trailing run without text is one more."""
        bounds: list[range] = []
        start = 0
        for step in self.steps:
            if step.text is not None and not step.is_attempt_fault:
                bounds.append(range(start, step.index + 1))
                start = step.index + 1
        if start < len(self.steps):
            bounds.append(range(start, len(self.steps)))
        return tuple(bounds)


def parse_script(document: Any, path: Path) -> Script:
    """The script in a decoded JSON `document`; raises TranscriptError naming what is wrong."""
    if not isinstance(document, dict):
        raise TranscriptError(path, "a script is a JSON object with `steps`")
    _no_unknown_keys(document, _SCRIPT_KEYS, path, None, "script")
    raw_steps = document.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise TranscriptError(path, "`steps` must be a non-empty list")
    repeat_last = document.get("repeat_last", False)
    if not isinstance(repeat_last, bool):
        raise TranscriptError(path, "`repeat_last` must be true or false")
    steps = tuple(_parse_step(raw, index, path) for index, raw in enumerate(raw_steps))
    return Script(
        path=path,
        engine=_string(document, "engine", path, None, default=""),
        model=_string(document, "model", path, None, default="replay") or "replay",
        steps=steps,
        repeat_last=repeat_last,
    )


def _parse_step(raw: Any, index: int, path: Path) -> Step:
    if not isinstance(raw, dict):
        raise TranscriptError(path, "a step is a JSON object", step=index)
    _no_unknown_keys(raw, _STEP_KEYS, path, index, "step")
    fault = _fault(raw, index, path)
    calls, text = _content(raw, fault, index, path)
    return Step(
        index=index,
        calls=calls,
        text=text,
        fault=fault,
        times=_times(raw, fault, index, path),
        retry_after=_retry_after(raw, fault, index, path),
        usage=_usage(raw, fault, index, path),
        expect_result=_expect_result(raw, calls, index, path),
    )


def _fault(raw: dict[str, Any], index: int, path: Path) -> Fault | None:
    if "fault" not in raw:
        return None
    try:
        return Fault(raw["fault"])
    except ValueError:
        known = ", ".join(f.value for f in Fault)
        raise TranscriptError(
            path, f"unknown fault {raw['fault']!r} (known: {known})", step=index
        ) from None


def _content(
    raw: dict[str, Any], fault: Fault | None, index: int, path: Path
) -> tuple[tuple[ToolCall, ...], str | None]:
    given = [key for key in ("tool", "tools", "text") if key in raw]
    if fault in _ERROR_FAULTS:
        if given:
            raise TranscriptError(path, f"fault {fault} takes no `{given[0]}`", step=index)
        return (), None
    if len(given) > 1:
        raise TranscriptError(path, f"give one of `tool`, `tools`, `text`, not {given}", step=index)
    if not given:
        if fault is Fault.TRUNCATED:
            return (), "This answer is cut short."
        if fault is Fault.UNKNOWN_TOOL:
            return (ToolCall(name="undeclared_tool", arguments={}),), None
        raise TranscriptError(path, "a step needs `tool`, `tools`, `text` or `fault`", step=index)
    if fault is Fault.MALFORMED_TOOL_JSON and given != ["tool"]:
        raise TranscriptError(path, "fault malformed_tool_json needs a `tool`", step=index)
    if fault is Fault.UNKNOWN_TOOL and given != ["tool"]:
        raise TranscriptError(path, "fault unknown_tool takes at most a `tool`", step=index)
    if given == ["text"]:
        return (), _string(raw, "text", path, index)
    if given == ["tool"]:
        return (_tool(raw["tool"], "`tool`", index, path),), None
    tools = raw["tools"]
    if not isinstance(tools, list) or not tools:
        raise TranscriptError(path, "`tools` must be a non-empty list", step=index)
    return tuple(_tool(t, f"`tools[{n}]`", index, path) for n, t in enumerate(tools)), None


def _tool(raw: Any, label: str, index: int, path: Path) -> ToolCall:
    if not isinstance(raw, dict):
        raise TranscriptError(path, f"{label} must be an object with `name`", step=index)
    _no_unknown_keys(raw, {"name", "arguments"}, path, index, label)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise TranscriptError(path, f"{label}.name must be a non-empty string", step=index)
    arguments = raw.get("arguments", {})
    if not isinstance(arguments, dict):
        raise TranscriptError(path, f"{label}.arguments must be a JSON object", step=index)
    return ToolCall(name=name, arguments=arguments)


def _times(raw: dict[str, Any], fault: Fault | None, index: int, path: Path) -> int:
    if "times" not in raw:
        return 1
    if fault not in ATTEMPT_FAULTS:
        raise TranscriptError(
            path,
            "`times` applies to rate_limit, server_error, overloaded, truncated and "
            "context_length faults only",
            step=index,
        )
    times = raw["times"]
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise TranscriptError(path, "`times` must be an integer of at least 1", step=index)
    return times


def _retry_after(raw: dict[str, Any], fault: Fault | None, index: int, path: Path) -> float | None:
    if "retry_after" not in raw:
        return 1.0 if fault is Fault.RATE_LIMIT else None
    if fault not in {Fault.RATE_LIMIT, Fault.SERVER_ERROR, Fault.OVERLOADED}:
        raise TranscriptError(
            path,
            "`retry_after` applies to rate_limit, server_error and overloaded faults",
            step=index,
        )
    value = raw["retry_after"]
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise TranscriptError(path, "`retry_after` must be a number of seconds >= 0", step=index)
    return float(value)


def _usage(raw: dict[str, Any], fault: Fault | None, index: int, path: Path) -> Usage | None:
    if "usage" not in raw:
        return None
    if fault is Fault.NO_USAGE or fault in _ERROR_FAULTS:
        raise TranscriptError(path, f"fault {fault} takes no `usage`", step=index)
    usage = raw["usage"]
    if not isinstance(usage, dict):
        raise TranscriptError(path, "`usage` must be an object", step=index)
    _no_unknown_keys(usage, {"input_tokens", "output_tokens"}, path, index, "`usage`")
    counts = [usage.get(key) for key in ("input_tokens", "output_tokens")]
    if any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in counts):
        raise TranscriptError(
            path, "`usage` needs integer input_tokens and output_tokens >= 0", step=index
        )
    return Usage(input_tokens=int(usage["input_tokens"]), output_tokens=int(usage["output_tokens"]))


def _expect_result(
    raw: dict[str, Any], calls: tuple[ToolCall, ...], index: int, path: Path
) -> str | None:
    if "expect_result" not in raw:
        return None
    if not calls:
        raise TranscriptError(path, "`expect_result` needs a step with tool calls", step=index)
    return _string(raw, "expect_result", path, index)


def _string(
    raw: dict[str, Any], key: str, path: Path, index: int | None, *, default: str | None = None
) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        raise TranscriptError(path, f"`{key}` must be a string", step=index)
    return value


def _no_unknown_keys(
    raw: dict[str, Any], allowed: set[str], path: Path, index: int | None, label: str
) -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise TranscriptError(
            path, f"{label} has unknown keys {unknown} (allowed: {sorted(allowed)})", step=index
        )
