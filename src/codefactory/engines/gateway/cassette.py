"""Per-run cassettes of upstream exchanges, in vcrpy's YAML format (cassette version 1).

`<traffic_dir>/<run_id>.yaml`:

    version: 1
    interactions:
    - request: {method, uri, body, headers: {name: [value]}}
      response: {status: {code, message}, headers: {name: [value, ...]}, body: {string}}

one interaction per upstream attempt, in order, as vcrpy's httpx stub would record them
around the gateway's own upstream client: `uri` is the upstream URL, request headers are
those sent upstream without any credential (`authorization`, `x-api-key`, `api-key`), bodies
are text when they are UTF-8 and `!!binary` otherwise. `runs replay` serves this file back
byte for byte through the replay upstream. Interactions are appended, so a run's file is
valid YAML after every call.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

# libyaml's safe dumper when present (about 5x faster: it runs once per upstream attempt).
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "proxy-authorization"})


@dataclass(frozen=True, kw_only=True)
class Interaction:
    """One upstream request and its response, as sent and received."""

    method: str
    uri: str
    request_headers: Mapping[str, str]
    request_body: bytes
    status: int
    reason: str
    response_headers: Sequence[tuple[str, str]]
    response_body: bytes


def _text_or_bytes(body: bytes) -> str | bytes:
    # vcrpy's compat layer stores bodies as text when they decode, and bytes otherwise.
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body


def as_vcr_dict(interaction: Interaction) -> dict[str, object]:
    """The interaction as vcrpy serialises it (`vcr.serialize.serialize`)."""
    response_headers: dict[str, list[str]] = {}
    for name, value in interaction.response_headers:
        response_headers.setdefault(name, []).append(value)
    return {
        "request": {
            "method": interaction.method,
            "uri": interaction.uri,
            "body": _text_or_bytes(interaction.request_body),
            "headers": {
                name: [value]
                for name, value in interaction.request_headers.items()
                if name.lower() not in CREDENTIAL_HEADERS
            },
        },
        "response": {
            "status": {"code": interaction.status, "message": interaction.reason},
            "headers": response_headers,
            "body": {"string": _text_or_bytes(interaction.response_body)},
        },
    }


class CassetteWriter:
    """Appends interactions to `<folder>/<run_id>.yaml` (folder 0700, files 0600);
    thread-safe."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()

    def path(self, run_id: str) -> Path:
        """The cassette file of `run_id` (it exists once the run made an upstream call)."""
        return self.folder / f"{run_id}.yaml"

    def append(self, run_id: str, interaction: Interaction) -> Path:
        """Add one interaction to the run's cassette; returns its path."""
        item = yaml.dump(
            [as_vcr_dict(interaction)], Dumper=_Dumper, allow_unicode=True, sort_keys=True
        )
        target = self.path(run_id)
        with self._lock:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            fresh = not target.exists()
            descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(descriptor, "a", encoding="utf-8") as stream:
                if fresh:
                    stream.write("version: 1\ninteractions:\n")
                stream.write(item)
        return target
