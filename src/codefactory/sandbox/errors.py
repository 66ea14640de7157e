"""Sandbox errors.

SandboxError
 ├── SandboxUnavailable   the backend cannot run here (missing bwrap, socat, no namespaces,
 │                        no container engine)
 ├── ProvisionFailed      the repository could not be turned into a workspace (not a
 │                        repository, no such commit, export failed, no room for the layer)
 ├── SetupFailed          the setup phase (dependency installation, image build) failed
 ├── StartFailed          one command's sandbox could not start (mount, cgroup or bwrap error)
 └── UnsupportedChange    the engine's layer holds what a commit cannot carry (a FIFO, a
                          socket, a device node, a file name that is not valid UTF-8)

A command that starts and then breaks a limit is not an error: its `ExecResult.limit_hit`
names the limit.
"""

from __future__ import annotations


class SandboxError(Exception):
    """Base class for every sandbox failure."""


class SandboxUnavailable(SandboxError):
    """The sandbox backend cannot start on this machine."""


class ProvisionFailed(SandboxError):
    """The repository could not be turned into a workspace."""


class SetupFailed(SandboxError):
    """Installing the repository's dependencies failed."""


class StartFailed(SandboxError):
    """The sandbox of one command could not start; the command never ran."""


class UnsupportedChange(SandboxError):
    """The engine left something in its layer that a change cannot carry; says what, where."""
