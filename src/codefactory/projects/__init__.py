"""What kind of project a repository is: its ecosystems, setup plan, tests and Python."""

from __future__ import annotations

from typing import TYPE_CHECKING

from codefactory.lazy import lazy_exports

if TYPE_CHECKING:
    from codefactory.projects.dependency_files import DEPENDENCY_FILE_GLOBS, is_dependency_file
    from codefactory.projects.detect import detect_project, setup_plan
    from codefactory.projects.model import (
        CustomCheck,
        Ecosystem,
        FileSource,
        JavaScriptProject,
        Project,
        PythonProject,
        RepositoryConfig,
        SetupStep,
    )

__all__ = [
    "DEPENDENCY_FILE_GLOBS",
    "CustomCheck",
    "Ecosystem",
    "FileSource",
    "JavaScriptProject",
    "Project",
    "PythonProject",
    "RepositoryConfig",
    "SetupStep",
    "detect_project",
    "is_dependency_file",
    "setup_plan",
]

__getattr__ = lazy_exports(
    __name__,
    globals(),
    {
        "DEPENDENCY_FILE_GLOBS": "codefactory.projects.dependency_files",
        "is_dependency_file": "codefactory.projects.dependency_files",
        "detect_project": "codefactory.projects.detect",
        "setup_plan": "codefactory.projects.detect",
        "CustomCheck": "codefactory.projects.model",
        "Ecosystem": "codefactory.projects.model",
        "FileSource": "codefactory.projects.model",
        "JavaScriptProject": "codefactory.projects.model",
        "Project": "codefactory.projects.model",
        "PythonProject": "codefactory.projects.model",
        "RepositoryConfig": "codefactory.projects.model",
        "SetupStep": "codefactory.projects.model",
    },
)
