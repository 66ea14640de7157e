"""The replay upstream: a stand-in model provider serving recorded (cassette) or scripted
conversations in OpenAI Chat Completions, OpenAI Responses and Anthropic Messages, streamed
and not. Transcript formats: `docs/transcripts.md`."""

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
