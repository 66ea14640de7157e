"""How the repository's tests run, and whether the project's environment can run them.

The repository config (`.codefactory/config.toml`) may give its own `test_command` (an argv)
and `test_paths`. A pytest command (`pytest ...`, `python -m pytest ...`) still writes a
JUnit report and may run a selected slice; any other command is judged by its exit status.
Before anything runs, one short probe asks `/env`'s interpreter for its version and whether
pytest imports, so the reasons a suite cannot run are named rather than found in a log: an
interpreter the project does not support (`requires-python`, PEP 440), pytest missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from codefactory.projects.model import Project
from codefactory.sandbox.layout import ENV_DIR
from codefactory.sandbox.port import Phase, Workspace

DEFAULT_PYTEST = ("python", "-m", "pytest")
PYTEST_MISSING = (
    "pytest is not installed in the project's environment: add it to a test group/extra "
    "or the repository config"
)
# Prints `3.11.2 yes` (the full version, whether pytest imports); `-I`: the workspace is not
# on sys.path, so a repository module cannot stand in for pytest.
_PROBE = (
    "import importlib.util, platform\n"
    "found = importlib.util.find_spec('pytest') is not None\n"
    "print(platform.python_version(), 'yes' if found else 'no')\n"
)


@dataclass(frozen=True, kw_only=True)
class SuiteCommand:
    """What runs the tests: `argv`, whether it is pytest, which paths it is restricted to,
    and where it was configured."""

    argv: tuple[str, ...]
    pytest: bool
    paths: tuple[str, ...] = ()
    source: str = ""
    """The repository config file that set it; empty for the default (`python -m pytest`)."""

    @property
    def shown(self) -> str:
        return " ".join(self.argv)


def suite_command(project: Project) -> SuiteCommand:
    """The repository config's test command (and paths), else `python -m pytest`."""
    config = project.config
    paths = tuple(config.test_paths)
    if config.test_command:
        argv = tuple(config.test_command)
        return SuiteCommand(
            argv=argv, pytest=is_pytest(argv), paths=paths, source=config.source or "config"
        )
    return SuiteCommand(argv=DEFAULT_PYTEST, pytest=True, paths=paths)


def is_pytest(argv: tuple[str, ...]) -> bool:
    """`pytest ...`, `py.test ...` or `python[3[.X]] -m pytest ...`."""
    if not argv:
        return False
    program = PurePosixPath(argv[0]).name
    if program in ("pytest", "py.test"):
        return True
    return program.startswith("python") and list(argv[1:3]) == ["-m", "pytest"]


@dataclass(frozen=True, kw_only=True)
class EnvironmentProbe:
    """What `/env` offers: its Python's version, whether pytest imports, and why it cannot
    run the tests (`problem`, empty when it can; pytest missing is left to the run, whose
    output is the evidence)."""

    version: str = ""
    has_pytest: bool = False
    problem: str = ""


def probe_environment(workspace: Workspace, project: Project) -> EnvironmentProbe:
    """Ask `/env`'s interpreter for its version and pytest; a missing interpreter or one the
    project does not support (`requires-python`, `.python-version`) is a `problem`."""
    probe = workspace.exec(["python", "-I", "-c", _PROBE], phase=Phase.CHECK, timeout_s=60)
    fields = probe.stdout.split()
    if probe.exit_code != 0 or len(fields) != 2:
        output = (probe.stderr.strip() or probe.stdout.strip() or "no output")[-300:]
        problem = (
            f"the project's environment {ENV_DIR} has no working Python "
            f"(`python` exited {probe.exit_code}: {output})"
        )
        return EnvironmentProbe(problem=problem)
    version, has_pytest = fields[0], fields[1] == "yes"
    return EnvironmentProbe(
        version=version, has_pytest=has_pytest, problem=interpreter_mismatch(project, version)
    )


def interpreter_mismatch(project: Project, version: str) -> str:
    """The mismatch between the Python the project asks for and `version`, or ""."""
    python = project.python
    wanted = python.python if python is not None else None
    if not wanted:
        return ""
    if not admits(wanted, version):
        source = f" ({python.python_source})" if python and python.python_source else ""
        return (
            f"interpreter mismatch: the project requires Python {wanted}{source}, "
            f"but {ENV_DIR} runs Python {version}"
        )
    return ""


def admits(wanted: str, version: str) -> bool:
    """Whether `version` (`3.11.2`) satisfies `wanted`: a PEP 440 specifier (`>=3.12`) or a
    bare version (`3.12`, `3.12.1`), which asks for its minor version: that decides what
    parses and which compiled packages load, and the sandbox provides the patch release it
    has. Unreadable text admits everything: detection reports it, and a check must not fail
    on what it cannot read."""
    try:
        found = Version(version)
    except InvalidVersion:
        return True
    text = wanted.strip().removesuffix(".*")
    if text[:1].isdigit():
        parts = text.split(".")[:2]
        return [str(p) for p in found.release[: len(parts)]] == parts
    try:
        return SpecifierSet(text).contains(found, prereleases=True)
    except InvalidSpecifier:
        return True
