"""Detect a repository's project from its committed files (no command runs)."""

from __future__ import annotations

from codefactory.projects.model import FileSource, Project


def detect_project(files: FileSource) -> Project:
    """The project `files` describe: its repository config, Python and JavaScript sides.

    Never raises for what a repository contains: what cannot be read is in `problems`.
    """
    # filled in by the python (projects/python.py, projects/config.py) and javascript
    # (projects/javascript.py) detectors
    return Project()
