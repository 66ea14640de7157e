"""External agent CLIs as engines, each inside the run's sandbox with only the model gateway
reachable, installed into a cached per-engine image (`docs/agent-clis.md`)."""

from __future__ import annotations

from pathlib import Path

from codefactory.engines.cli.adapter import CliAdapter
from codefactory.engines.cli.claude_code import ClaudeCodeAdapter
from codefactory.engines.cli.codex import CodexAdapter
from codefactory.engines.cli.engine import CliEngine, NoModelAccess
from codefactory.engines.cli.errors import (
    CliEngineError,
    CliExited,
    CliLimitHit,
    CliNoResult,
    CliTimedOut,
    ImageBuildFailed,
    ModelBudgetSpent,
)
from codefactory.engines.cli.mini_swe_agent import MiniSweAgentAdapter
from codefactory.engines.cli.opencode import OpencodeAdapter

ADAPTERS: dict[str, type[CliAdapter]] = {
    "cli:codex": CodexAdapter,
    "cli:claude-code": ClaudeCodeAdapter,
    "cli:mini-swe-agent": MiniSweAgentAdapter,
    "cli:opencode": OpencodeAdapter,
}
"""Registry name → adapter."""


def cli_engine(name: str, cache_dir: Path) -> CliEngine:
    """The engine registered as `name` (`cli:codex`, ...); KeyError names the known ones."""
    try:
        adapter = ADAPTERS[name]
    except KeyError:
        raise KeyError(f"no agent CLI {name!r}; known: {', '.join(sorted(ADAPTERS))}") from None
    return CliEngine(adapter(), cache_dir)


__all__ = [
    "ADAPTERS",
    "CliAdapter",
    "CliEngine",
    "CliEngineError",
    "CliExited",
    "CliLimitHit",
    "CliNoResult",
    "CliTimedOut",
    "ImageBuildFailed",
    "ModelBudgetSpent",
    "NoModelAccess",
    "cli_engine",
]
