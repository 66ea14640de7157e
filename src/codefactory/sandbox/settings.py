"""Settings of the execution environment (the `sandbox` section of `Settings`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict


class SandboxSettings(BaseModel):
    """How workspaces are isolated."""

    model_config = ConfigDict(extra="forbid")

    type: str = "bubblewrap"
    """Backend name; `bubblewrap` is the only one in the embedded default."""
    python: Path = Path("/usr/bin/python3")
    """Interpreter the repository's virtualenv is built from, visible inside the sandbox."""
    command_timeout_s: float = 300.0
    """Wall-clock limit for one command inside the sandbox."""
    setup_timeout_s: float = 600.0
    """Wall-clock limit for the dependency-installation phase."""
    max_output_bytes: int = 4_000_000
    """Output kept per stream of a sandboxed command; the rest is cut and marked."""
