"""Paths as a sandboxed command sees them; the same for every backend."""

from __future__ import annotations

SANDBOX_ROOT = "/workspace"
"""The repository's working copy; the command's working directory."""
ENV_DIR = "/env"
"""The repository's virtualenv; writable only in the SETUP phase."""
TOOLS_DIR = "/opt/codefactory/bin"
"""Host tools the factory lends read-only (`tools.py`)."""
SCANNERS_ENV = f"{ENV_DIR}/.scanners"
"""A virtualenv of the factory's scanners (bandit) built with the project's own Python in the
setup phase, when that Python is not the factory's: scanners parse with their interpreter."""
NODE_MODULES = f"{ENV_DIR}/node_modules"
"""Where the setup phase installs a JavaScript project's packages; the sandbox shows this folder
read-only at `/workspace/node_modules` in the engine and check phases."""
CACHE_DIR = "/cache"
"""The package cache, mounted only in the SETUP phase."""
EGRESS_SOCKET = "/run/codefactory/egress.sock"
"""The host-side egress proxy's Unix socket, present only when egress is allowed."""
PROXY_PORT = 3128
"""Where the in-sandbox bridge to the egress proxy listens, on the sandbox's own loopback."""
PROXY_URL = f"http://127.0.0.1:{PROXY_PORT}"
SANDBOX_PATH = f"{ENV_DIR}/bin:{TOOLS_DIR}:/usr/local/bin:/usr/bin:/bin"
"""What a command named without a path resolves through: the repository's environment first,
so its own pytest runs. The factory's own commands are therefore always named by absolute
path (below): a setup phase that installs a `sh`, `ruff` or `setpriv` into `/env/bin` must
not stand in for them."""

SH = "/usr/bin/sh"
RUFF = f"{TOOLS_DIR}/ruff"
UV = f"{TOOLS_DIR}/uv"


def system_tool(name: str) -> str:
    """The host's `name` as the sandbox sees it (`/usr` is the host's, read-only)."""
    return f"/usr/bin/{name}"
