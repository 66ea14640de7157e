"""mini-swe-agent (PyPI `mini-swe-agent`): `mini -t TASK --yolo --exit-immediately -o traj.json`.

It runs in a virtualenv of its own in the image, with litellm pinned to a release known to
be clean (1.82.7 and 1.82.8 carried a credential stealer) and its price map read locally
(`LITELLM_LOCAL_MODEL_COST_MAP=True`: no fetch at import). It speaks Chat Completions to
`model.model_kwargs.api_base` with one tool, `bash`, and ends when a command prints
`COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT`. Its console output is not machine-readable: the
record is the trajectory file (`trajectory_format` `mini-swe-agent-1.1`: `info.exit_status`,
`info.submission`, `messages`), printed on stdout once it ends.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from codefactory.engines.cli.adapter import (
    HOME_DIR,
    IMAGE_DIR,
    Launch,
    StreamReading,
    status_in,
)
from codefactory.engines.cli.image import ImageRecipe
from codefactory.engines.session import ModelAccess

TRAJECTORY = "traj.json"
SUBMITTED = "Submitted"
RATE_LIMITED = "RateLimitError"
"""litellm's exception for an HTTP 429, which mini records as its exit status."""


SH = "/usr/bin/sh"
LAUNCHER = (
    # mini looks for a relative config in the working directory (the repository) before its
    # own, and `python -m` puts the working directory first on sys.path: name the built-in
    # config by its absolute path and run with -P, so a repository can configure nothing
    'api="$1"; shift; config=""; '
    f"for found in {IMAGE_DIR}/venv/lib/python3*/site-packages/minisweagent/config/mini.yaml; "
    'do config="$found"; done; '
    'test -f "$config" || { echo "the engine image has no built-in mini.yaml" >&2; exit 97; }; '
    f'exec {IMAGE_DIR}/venv/bin/python -P -m minisweagent "$@" '
    '-c "$config" -c "$api" -c environment.cwd=/workspace'
)


class MiniSweAgentAdapter:
    """`cli:mini-swe-agent`."""

    name = "mini-swe-agent"
    protocol = "openai-chat"
    stream_name = "mini-swe-agent.traj.json"
    recipe = ImageRecipe(
        name="mini-swe-agent",
        kind="python",
        package="mini-swe-agent",
        version="2.4.6",
        pins=("litellm==1.110.2",),
        entry=("venv/bin/python",),
    )

    def launch(
        self,
        prompt: str,
        model: ModelAccess,
        allowed_tools: Sequence[str],
        *,
        context_mcp: bool = False,
    ) -> Launch:
        """Its one tool, `bash`, cannot be narrowed: `allowed_tools` is not used."""
        api_base = model.base_url.rstrip("/") + "/v1"
        command = (
            SH, "-c", LAUNCHER, "mini", f"model.model_kwargs.api_base={api_base}",
            "-m", f"openai/{model.model}", "-t", prompt, "--yolo", "--exit-immediately",
            "-l", "0", "-o", f"{HOME_DIR}/{TRAJECTORY}",
        )  # fmt: skip
        env = {
            "OPENAI_API_KEY": model.credential,
            "MSWEA_CONFIGURED": "true",
            "MSWEA_COST_TRACKING": "ignore_errors",
            "MSWEA_MODEL_RETRY_STOP_AFTER_ATTEMPT": "1",  # the gateway retries, within budget
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_TELEMETRY": "False",
            "HF_HUB_OFFLINE": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        return Launch(command=command, env=env, quiet_stdout=True, artifact=TRAJECTORY)

    def read(self, stream: bytes) -> StreamReading:
        """The trajectory's `info.submission` (else its last assistant text) is the final
        message when `info.exit_status` is `Submitted`."""
        try:
            trajectory = json.loads(stream.decode("utf-8", "replace") or "null")
        except ValueError:
            trajectory = None
        if not isinstance(trajectory, dict) or not isinstance(trajectory.get("info"), dict):
            lines = tuple(line[:200] for line in stream.decode("utf-8", "replace").splitlines())
            return StreamReading(final_message=None, events=0, garbage=lines)
        info: dict[str, Any] = trajectory["info"]
        messages = trajectory.get("messages")
        messages = messages if isinstance(messages, list) else []
        status = str(info.get("exit_status", ""))
        error = "" if status == SUBMITTED else f"{status}: {info.get('exception_str', '')}"
        return StreamReading(
            final_message=_final(info, messages) if status == SUBMITTED else None,
            events=len(messages),
            error=error if status else "",
            http_status=429 if status == RATE_LIMITED else (status_in(error) if error else None),
            details={"exit_status": status, "api_calls": _api_calls(info)},
        )


def _final(info: dict[str, Any], messages: list[Any]) -> str:
    submission = str(info.get("submission", "")).strip()
    if submission:
        return submission
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "assistant":
            content = message.get("content")
            if isinstance(content, str) and content.strip():
                return content.strip()
    return ""


def _api_calls(info: dict[str, Any]) -> int | None:
    stats = info.get("model_stats")
    return stats.get("api_calls") if isinstance(stats, dict) else None
