"""The replay upstream: a stand-in model provider serving recorded (cassette) or scripted
conversations in OpenAI Chat Completions, OpenAI Responses and Anthropic Messages, streamed
and not. Transcript formats: `docs/transcripts.md`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from codefactory.lazy import lazy_exports

if TYPE_CHECKING:
    from codefactory.engines.replay.app import build_replay_app
    from codefactory.engines.replay.cassette import Cassette, Interaction
    from codefactory.engines.replay.errors import TranscriptError
    from codefactory.engines.replay.script import Fault, Script, Step, ToolCall, Usage
    from codefactory.engines.replay.transcript import Transcript, load_transcript

__all__ = [
    "Cassette",
    "Fault",
    "Interaction",
    "Script",
    "Step",
    "ToolCall",
    "Transcript",
    "TranscriptError",
    "Usage",
    "build_replay_app",
    "load_transcript",
]

__getattr__ = lazy_exports(
    __name__,
    globals(),
    {
        "build_replay_app": "codefactory.engines.replay.app",
        "Cassette": "codefactory.engines.replay.cassette",
        "Interaction": "codefactory.engines.replay.cassette",
        "TranscriptError": "codefactory.engines.replay.errors",
        "Fault": "codefactory.engines.replay.script",
        "Script": "codefactory.engines.replay.script",
        "Step": "codefactory.engines.replay.script",
        "ToolCall": "codefactory.engines.replay.script",
        "Usage": "codefactory.engines.replay.script",
        "Transcript": "codefactory.engines.replay.transcript",
        "load_transcript": "codefactory.engines.replay.transcript",
    },
)
