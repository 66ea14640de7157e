"""Paths as a sandboxed command sees them; the same for every backend."""

from __future__ import annotations

SANDBOX_ROOT = "/workspace"
"""The repository's working copy; the command's working directory."""
ENV_DIR = "/env"
"""The repository's virtualenv; writable only in the SETUP phase."""
TOOLS_DIR = "/opt/codefactory/bin"
"""Host tools the factory lends read-only (`tools.py`)."""
CACHE_DIR = "/cache"
"""The package cache, mounted only in the SETUP phase."""
EGRESS_SOCKET = "/run/codefactory/egress.sock"
"""The host-side egress proxy's Unix socket, present only when egress is allowed."""
PROXY_PORT = 3128
"""Where the in-sandbox bridge to the egress proxy listens, on the sandbox's own loopback."""
PROXY_URL = f"http://127.0.0.1:{PROXY_PORT}"
SANDBOX_PATH = f"{ENV_DIR}/bin:{TOOLS_DIR}:/usr/local/bin:/usr/bin:/bin"
