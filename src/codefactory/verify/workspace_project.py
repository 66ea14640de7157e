"""What the workspace under judgement is: its ecosystems and repository config, detected once
per gate run from the files the sandbox shows after the change (`projects.detect`)."""

from __future__ import annotations

from collections.abc import Callable

from codefactory.projects.detect import detect_project
from codefactory.projects.files import WorkspaceFiles
from codefactory.projects.model import Project
from codefactory.sandbox.port import Workspace

ProjectDetector = Callable[[Workspace], Project]
"""Reads a workspace's project; raises when it cannot list or read the workspace."""


def detect_workspace(workspace: Workspace) -> Project:
    """The project of `workspace`'s committed and changed files (`node_modules` lent from
    `/env` is not among them); OSError when the workspace's files cannot be listed."""
    return detect_project(WorkspaceFiles(workspace))
