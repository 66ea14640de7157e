"""What kind of project a repository is: its ecosystems, setup plan, tests and Python."""

from codefactory.projects.detect import DEPENDENCY_FILE_GLOBS, detect_project, setup_plan
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
    "setup_plan",
]
