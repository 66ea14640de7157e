"""The setup phase: install the repository's dependencies into `/env`.

It is the one phase whose default egress policy reaches the package index (through the
proxy). A workspace provisioned from a pre-warmed image already has them, and says so.
"""

from __future__ import annotations

import re
from typing import Protocol, runtime_checkable

from codefactory.sandbox.errors import SetupFailed
from codefactory.sandbox.layout import ENV_DIR, UV, system_tool
from codefactory.sandbox.port import Phase, Workspace

REQUIREMENTS = re.compile(r"^requirements[\w.-]*\.txt$")
DEPENDENCY_FILES = re.compile(r"^(requirements[\w.-]*\.txt|pyproject\.toml|setup\.cfg|setup\.py)$")
"""The root files the setup phase reads (what an image is keyed by)."""
DEPENDENCY_PATHS = re.compile(
    r"(^|/)(requirements[\w.-]*\.txt|constraints[\w.-]*\.txt|[\w.-]+\.in|pyproject\.toml"
    r"|setup\.cfg|setup\.py|[^/]+\.whl)$|(^|/)req[^/]*/[^/]+\.txt$"
)
"""Any file, at any depth, that a requirement file may pull in (`-r`, `-c`, a local wheel):
changing one means the setup phase must run again. Broader than needed, never narrower."""
_SELF_CONTAINED_OPTIONS = ("--hash", "--index-url", "-i", "--extra-index-url", "--no-binary",
                           "--only-binary", "--prefer-binary", "--pre")  # fmt: skip
_ARCHIVES = (".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tar")
_PLAIN_REQUIREMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]/]*\])?\s*([<>=!~;][^/\\@]*)?")


def dependency_files(paths: list[str]) -> list[str]:
    """The paths among `paths` whose change means the setup phase must run again."""
    return [p for p in paths if DEPENDENCY_PATHS.search(p)]


def self_contained(requirements: str) -> bool:
    """Whether a requirements file names only index packages: no `-r`/`-c` include, no
    editable, local path, URL or direct reference, so its own bytes say everything it
    installs. Anything else makes an image specific to its whole tree."""
    logical = requirements.replace("\\\n", " ")
    for line in logical.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            if not line.startswith(_SELF_CONTAINED_OPTIONS):
                return False
            continue
        requirement = line.split(" --hash", 1)[0].strip()
        if not _PLAIN_REQUIREMENT.fullmatch(requirement) or requirement.endswith(_ARCHIVES):
            return False
    return True


@runtime_checkable
class PrewarmedWorkspace(Protocol):
    """A workspace that may already hold its installed dependencies (from an image)."""

    def installed_dependencies(self) -> list[str] | None:
        """The requirement files already installed, or None when setup must run."""
        ...


def install_dependencies(
    workspace: Workspace, *, python: str = "/usr/bin/python3", timeout_s: float = 600.0
) -> list[str]:
    """Create the virtualenv and install every root `requirements*.txt`; returns those files.
    Nothing runs when the workspace's image already installed them."""
    if isinstance(workspace, PrewarmedWorkspace):
        ready = workspace.installed_dependencies()
        if ready is not None:
            return ready
    listing = workspace.exec([system_tool("ls"), "-1A"], phase=Phase.ENGINE, timeout_s=30)
    files = sorted(n for n in listing.stdout.splitlines() if REQUIREMENTS.match(n))
    steps = [[UV, "venv", "--quiet", "--allow-existing", "--python", python, ENV_DIR]]
    if files:
        steps.append(
            [
                UV,
                "pip",
                "install",
                "--quiet",
                "--python",
                f"{ENV_DIR}/bin/python",
                *[arg for f in files for arg in ("-r", f)],
            ]
        )
    for step in steps:
        result = workspace.exec(step, phase=Phase.SETUP, timeout_s=timeout_s)
        if not result.ok:
            cause = (
                f"the sandbox's {result.limit_hit} limit was hit"
                if result.limit_hit
                else (result.stderr.strip() or result.stdout.strip())
            )
            shown = " ".join([step[0].rsplit("/", 1)[-1], *step[1:]])
            raise SetupFailed(f"setup phase failed at `{shown}`: {cause[-2000:]}")
    return files
