"""Loading a transcript file, cassette or script, told apart by its content."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from codefactory.engines.replay.cassette import Cassette, parse_cassette
from codefactory.engines.replay.errors import TranscriptError
from codefactory.engines.replay.script import Script, parse_script

Transcript = Cassette | Script


def load_transcript(path: Path) -> Transcript:
    """The transcript in `path`: a JSON object with `steps` is a script, a YAML mapping with
    `interactions` (vcrpy's cassette format) a cassette, whatever the file is called.

    Raises TranscriptError (a ValueError) naming the file, the step or interaction, and what
    is wrong, for a file that is missing, unreadable, of neither shape, or malformed.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise TranscriptError(path, f"cannot read the transcript: {error}") from error
    document = _decode(text, path)
    if isinstance(document, dict) and "steps" in document:
        return parse_script(document, path)
    if isinstance(document, dict) and "interactions" in document:
        return parse_cassette(document, path)
    raise TranscriptError(
        path,
        "neither a script (JSON object with `steps`) nor a cassette (YAML with `interactions`)",
    )


def _decode(text: str, path: Path) -> Any:
    try:
        return json.loads(text)
    except ValueError as json_error:
        if text.lstrip().startswith("{"):
            # A script with a JSON syntax error: the JSON position helps more than YAML's.
            raise TranscriptError(path, f"invalid JSON: {json_error}") from json_error
    try:
        # safe_load reads vcrpy's `!!binary` bodies and nothing executable.
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise TranscriptError(path, f"invalid YAML: {error}") from error
