"""Host tool binaries the factory lends, read-only, to every sandbox."""

from __future__ import annotations

import shutil
import sys
import sysconfig
from functools import cache
from pathlib import Path

from codefactory.sandbox.errors import SandboxUnavailable

LENT_TOOLS = ("ruff", "uv")
PYTHON_PACKAGES = "python-packages"
"""The factory's own site-packages, lent read-only under this name so the sandbox's
interpreter (the same Python minor version) can run the scanners installed with the factory
(bandit, detect-secrets, coverage); `verify/lent.py` says how they are imported."""


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
    tools[PYTHON_PACKAGES] = Path(sysconfig.get_path("purelib")).resolve()
    return tools
