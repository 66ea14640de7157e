"""What kind of project a repository is: its ecosystems, setup plan, tests and Python."""

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
    "CustomCheck",
    "Ecosystem",
    "FileSource",
    "JavaScriptProject",
    "Project",
    "PythonProject",
    "RepositoryConfig",
    "SetupStep",
]
