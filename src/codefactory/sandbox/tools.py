"""Host tool binaries the factory lends, read-only, to every sandbox."""

from __future__ import annotations

import shutil
import sys
from functools import cache
from pathlib import Path

from codefactory.sandbox.errors import SandboxUnavailable

LENT_TOOLS = ("ruff", "uv")


@cache
def sandbox_tools() -> dict[str, Path]:
    """Each lent tool's binary, from the factory's own environment first, then PATH."""
    tools: dict[str, Path] = {}
    own_bin = Path(sys.executable).parent
    for name in LENT_TOOLS:
        candidate = own_bin / name
        found = candidate if candidate.is_file() else shutil.which(name)
        if found is None:
            raise SandboxUnavailable(
                f"the tool `{name}` is missing: install Code Factory with `make demo`"
            )
        tools[name] = Path(found).resolve()
    return tools
