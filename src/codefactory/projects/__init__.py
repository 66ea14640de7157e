"""What kind of project a repository is: its ecosystems, setup plan, tests and Python."""

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
