"""Settings of identity & delegation and the audit log."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

# What the default policy's routine changes may touch; any other kind gets the repository.
DEFAULT_SCOPE_PATHS = {
    "bump_dependency": [
        "requirements*.txt",
        "**/requirements*.txt",
        "pyproject.toml",
        "**/pyproject.toml",
        "uv.lock",
        "poetry.lock",
    ],
    "fix_lint": ["*.py", "**/*.py", "*.pyi", "**/*.pyi"],
}


class IdentitySettings(BaseModel):
    """Settings of identity & delegation and the audit log."""

    model_config = ConfigDict(extra="forbid")

    issuer: str = "codefactory:local"
    """The factory's name as an issuer: `iss` of every delegation token, issuer of agents."""
    directory_file: Path | None = None
    """The directory of people (TOML; `identity.directory.FileDirectory`): their sender
    identities, roles and SSH keys. Kept outside the data folder; unset, nobody is known."""
    keys_dir: Path | None = None
    """Folder of the issuer's and the agents' key files; defaults to `<data_dir>/keys`."""
    audience: str = "codefactory:run"
    """`aud` of delegation tokens: the components that act for a run check it."""
    token_ttl_s: int = Field(default=3600, gt=0)
    """Lifetime of a run's delegation token: the run's budget from authorization to review."""
    default_agent_engines: list[str] = Field(default_factory=lambda: ["*"])
    """Engines (fnmatch patterns) the default agent may run: those the factory wires; register
    agents with narrower lists for other work (`codefactory agents create --engine`)."""
    scope_paths: dict[str, list[str]] = Field(default_factory=lambda: dict(DEFAULT_SCOPE_PATHS))
    """Path globs a delegation grants per change kind; kinds not listed get `**`."""
