"""Detect a repository's project from its committed files (no command runs)."""

from __future__ import annotations

import dataclasses

from codefactory.projects.config import RepositoryConfigInvalid, read_config
from codefactory.projects.javascript import detect_javascript
from codefactory.projects.model import FileSource, Project, RepositoryConfig, SetupStep
from codefactory.projects.python import detect_python


def detect_project(files: FileSource) -> Project:
    """The project `files` describe: its repository config, Python and JavaScript sides.

    Never raises for what a repository contains: what cannot be read is in `problems` (an
    invalid repository config is one, and detection then goes on without it).
    """
    problems: list[str] = []
    try:
        config = read_config(files)
    except RepositoryConfigInvalid as err:
        problems.append(str(err))
        config = RepositoryConfig()
    python, found = detect_python(files, config)
    problems += found
    javascript, found = detect_javascript(files, config)
    problems += found
    if config.replace_setup:
        if python is not None:
            python = dataclasses.replace(python, layout="config", setup=())
        if javascript is not None:
            javascript = dataclasses.replace(javascript, setup=())
    return Project(python=python, javascript=javascript, config=config, problems=tuple(problems))


def setup_plan(project: Project) -> tuple[SetupStep, ...]:
    """The setup phase's steps in order: the Python side's, the JavaScript side's, then the
    repository config's own lines (alone, with `replace`). The runner creates `/env` first."""
    steps = [*(project.python.setup if project.python else ()),
             *(project.javascript.setup if project.javascript else ())]  # fmt: skip
    source = project.config.source
    for line in project.config.setup:
        steps.append(SetupStep(argv=(line,), why=f"{source} setup.commands", shell=True))
    return tuple(steps)
