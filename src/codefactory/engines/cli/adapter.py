"""The adapter port: what one agent CLI needs to run in the sandbox, and how to read its stream.

An adapter knows its CLI only: the image recipe, the command line, the environment and the
files of its private home; and how to read the machine-readable stream it printed into a
`StreamReading`. Running it in the workspace is `runner.py`'s job, judging the outcome
`engine.py`'s.

Inside the sandbox every CLI sees the same layout:

    /opt/engine             its image, read-only
    /opt/engine-kit         the run's kit, read-only: `ca.pem` and `home/` (config files)
    /tmp/engine-home        HOME: a private, writable copy of `home/` (never in the change)
    /workspace              the repository, the working directory
"""

from __future__ import annotations

import json
import platform
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from codefactory.engines.cli.image import ImageRecipe
from codefactory.engines.session import ModelAccess

IMAGE_DIR = "/opt/engine"
NODE_ARCH = {"x86_64": "x64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
"""The machine as npm names it in the native packages the CLIs ship (`linux-x64`)."""
KIT_DIR = "/opt/engine-kit"
HOME_DIR = "/tmp/engine-home"
CA_FILE = f"{KIT_DIR}/ca.pem"
QUOTED_STATUSES = (429, 401, 403, 404, 413, 400, 500, 502, 503, 504, 529)
KEY_VARIABLE = "CODEFACTORY_MODEL_KEY"
"""The variable carrying the run's gateway credential, for CLIs that name theirs."""


@dataclass(frozen=True, kw_only=True)
class Launch:
    """One CLI invocation inside the sandbox."""

    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    home_files: Mapping[str, str] = field(default_factory=dict)
    """Relative path under HOME → text, in place before the CLI starts."""
    quiet_stdout: bool = False
    """Send the CLI's own stdout to stderr (its stream is a file: `artifact`)."""
    artifact: str = ""
    """A file under HOME holding the CLI's machine-readable record, printed on stdout once the
    CLI ends (mini-swe-agent's trajectory); empty: stdout is the stream."""


@dataclass(frozen=True, kw_only=True)
class StreamReading:
    """What a CLI's stream says happened."""

    final_message: str | None
    """The CLI's final message; None when the stream has no final result event."""
    events: int
    """Machine-readable events read."""
    garbage: tuple[str, ...] = ()
    """Lines that were not events (kept, cut to 200 characters each)."""
    error: str = ""
    """The error the CLI reported as its result, if any."""
    http_status: int | None = None
    """The HTTP status of the model call that ended it, when the stream names one."""
    details: Mapping[str, Any] = field(default_factory=dict)
    """Counts for the proposal (tool calls, turns, the CLI's own usage figures)."""


class CliAdapter(Protocol):
    """One agent CLI."""

    name: str
    """The registry name without `cli:` (`codex`)."""
    protocol: str
    """The wire protocol it speaks to the gateway (`openai-responses`, ...)."""
    recipe: ImageRecipe
    stream_name: str
    """The evidence file name of its stream (`codex.jsonl`)."""

    def launch(
        self,
        prompt: str,
        model: ModelAccess,
        allowed_tools: Sequence[str],
        *,
        context_mcp: bool = False,
    ) -> Launch:
        """The command line, environment and home files for one run; with `context_mcp`,
        the run's context engine configured as an MCP server (`mcp_config.py`) where the
        CLI has an MCP client."""
        ...

    def read(self, stream: bytes) -> StreamReading:
        """Read its stream; never raises for malformed input (garbage is counted)."""
        ...


def ca_variables() -> dict[str, str]:
    """Every variable the CLIs read a CA from, naming the factory CA in the kit."""
    names = ("NODE_EXTRA_CA_CERTS", "CODEX_CA_CERTIFICATE", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
    return dict.fromkeys(names, CA_FILE)


def json_lines(stream: bytes) -> Iterator[dict[str, Any] | str]:
    """Each line of a JSON-lines stream: an object, or the line itself when it is not one."""
    for raw in stream.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if not line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            yield line[:200]
            continue
        yield event if isinstance(event, dict) else line[:200]


def status_in(text: str) -> int | None:
    """The HTTP error status a CLI quoted in its error message (`429 Too Many Requests`,
    `Request rejected (429)`, `status: 429`), the first of `QUOTED_STATUSES` found as a
    whole number; None when it quotes none."""
    for status in QUOTED_STATUSES:
        if re.search(rf"(?<![0-9.]){status}(?![0-9])", text):
            return status
    return None
