"""The setup phase: install the repository's dependencies into `/env`, as detection planned
(`projects.detect`): create the virtualenv with the project's Python, then run each step.

It is the one phase whose default egress policy reaches the package indexes (through the
proxy). A workspace provisioned from a pre-warmed image already has them, and says so. Every
step runs under the same timeout, its output goes into the setup log, and a failing step
raises `SetupStepFailed` naming the step, the file that asked for it and the log's tail.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from codefactory.projects.dependency_files import is_dependency_file
from codefactory.projects.detect import detect_project, setup_plan
from codefactory.projects.files import WorkspaceFiles
from codefactory.projects.model import Project, SetupStep
from codefactory.sandbox.errors import SetupFailed
from codefactory.sandbox.layout import ENV_DIR, SH, UV
from codefactory.sandbox.port import Phase, Workspace
from codefactory.sandbox.pythons import PythonInterpreters, scanner_steps

_SELF_CONTAINED_OPTIONS = ("--hash", "--index-url", "-i", "--extra-index-url", "--no-binary",
                           "--only-binary", "--prefer-binary", "--pre")  # fmt: skip
_INCLUDES = ("-r", "--requirement", "-c", "--constraint")
_ARCHIVES = (".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tar")
_PLAIN_REQUIREMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]/]*\])?\s*([<>=!~;][^/\\@]*)?")
_TAIL = 3000
_EGRESS_REFUSED = re.compile(r"403 Forbidden|tunnel error|ProxyError|egress to .* denied", re.I)
_EGRESS_HINT = (
    "a host outside the setup phase's egress allow-list is refused by the sandbox's proxy; "
    "a private index needs an egress entry in the factory's policy"
)
_URL_HOST = re.compile(r"https?://([A-Za-z0-9.-]+)")
_HINTS = (
    (re.compile(r"lockfile .* needs to be updated|--locked was provided", re.I | re.S),
     "uv.lock is out of date with pyproject.toml: run `uv lock` and commit the result"),
    (re.compile(r"pyproject\.toml changed significantly since poetry\.lock", re.I),
     "poetry.lock is out of date with pyproject.toml: run `poetry lock` and commit it"),
    (_EGRESS_REFUSED, _EGRESS_HINT),
    (re.compile(r"No solution found|ResolutionImpossible|conflict", re.I),
     "the requirements cannot all be satisfied together (a resolution conflict)"),
    (re.compile(r"fatal error: .*\.h: No such file|library not found|cannot find -l", re.I),
     "building a package needs a system library the sandbox does not have"),
)  # fmt: skip


class SetupStepFailed(SetupFailed):
    """One setup step failed: `step` what ran, `why` the file that asked for it, `log` the
    whole setup log so far (the message carries its tail)."""

    def __init__(self, step: SetupStep, shown: str, cause: str, log: str) -> None:
        self.step = step
        self.why = step.why
        self.log = log
        hint = next((h for pattern, h in _HINTS if pattern.search(log)), "")
        refused = _refused_hosts(log) if hint == _EGRESS_HINT else []
        if refused:
            hint = (
                f"the sandbox's egress proxy refused {', '.join(refused)}, outside the setup "
                "phase's egress allow-list; a private index needs an egress entry in the "
                "factory's policy"
            )
        message = f"setup phase failed at `{shown}` ({step.why}): {cause}"
        if hint:
            message += f"; {hint}"
        super().__init__(f"{message}\n--- setup log (tail) ---\n{log[-_TAIL:]}")


class ProjectUnreadable(SetupFailed):
    """Detection could not read what the repository asks for (`problems`, one sentence each)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("setup phase cannot start: " + "; ".join(self.problems))


class SetupLog:
    """The setup phase's output, step by step: what ran, why, and what it printed."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def add(self, text: str) -> None:
        self.parts.append(text)

    @property
    def text(self) -> str:
        return "".join(self.parts)


def dependency_files(paths: list[str]) -> list[str]:
    """The paths among `paths` whose change means the setup phase must run again: any
    dependency file of either ecosystem at any depth (`projects.is_dependency_file`: a
    manifest, a lock, a `req*/` file a requirement includes, the repository config) or a local
    wheel. Broader than needed, never narrower."""
    return [p for p in paths if is_dependency_file(p) or p.endswith(".whl")]


def self_contained(requirements: str, *, includes_known: bool = False) -> bool:
    """Whether a requirements file names only index packages: no editable, local path, URL or
    direct reference, and no `-r`/`-c` include unless `includes_known` (the caller keys the
    included files itself), so the bytes named say everything it installs. Anything else
    makes an image specific to its whole tree."""
    logical = requirements.replace("\\\n", " ")
    for line in logical.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            if includes_known and line.startswith(_INCLUDES):
                continue
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
        """The dependency files already installed, or None when setup must run."""
        ...


def install_dependencies(
    workspace: Workspace,
    *,
    python: str = "/usr/bin/python3",
    timeout_s: float = 600.0,
    interpreters: PythonInterpreters | None = None,
    project: Project | None = None,
    log: SetupLog | None = None,
) -> list[str]:
    """Create `/env` and run the project's setup plan in the SETUP phase; returns the files
    that decided it (`Project.inputs`). Nothing runs when the workspace's image already did.

    `python` is the host interpreter used when no `interpreters` are given; with them, `/env`
    gets the interpreter the project asks for, and the scanners' own environment
    (`SCANNERS_ENV`) is built with it when its version is not the factory's. `project` skips
    detection (the caller read the tree already); `log` receives every step's output.
    `timeout_s` bounds each step. Once every step succeeded, a workspace that can
    (`keep_setup_outputs`) keeps the files the steps created in the tree, such as a version
    file a build hook writes, for the later phases. Raises `ProjectUnreadable` for what
    detection could not read, `SetupStepFailed` for a failed step, and the interpreters'
    `SetupFailed` when the wanted Python is not available.
    """
    if isinstance(workspace, PrewarmedWorkspace):
        ready = workspace.installed_dependencies()
        if ready is not None:
            return ready
    if project is None:
        project = detect_project(WorkspaceFiles(workspace, Phase.ENGINE))
    if project.problems:
        raise ProjectUnreadable(project.problems)
    log = log if log is not None else SetupLog()
    venv, scanners = _environment(project, python, interpreters)
    for step in [*venv, *setup_plan(project), *scanners]:
        _run(workspace, step, timeout_s, log)
    keep = getattr(workspace, "keep_setup_outputs", None)
    if callable(keep):  # files a build hook wrote into the tree (`setup_outputs.py`)
        log.add(str(keep()))
    return list(project.inputs)


def _environment(
    project: Project, python: str, interpreters: PythonInterpreters | None
) -> tuple[list[SetupStep], tuple[SetupStep, ...]]:
    """The step that creates `/env` (kept when it exists: an image's, or a mount point) with
    the Python the project asks for; and the scanners' environment, built after the project's
    own steps, when that Python is not the host's."""
    wanted = project.python.python if project.python else project.config.python
    source = project.python.python_source if project.python else project.config.source
    scanners: tuple[SetupStep, ...] = ()
    if interpreters is None:
        path, why = python, "the factory's Python"
    else:
        interpreter = interpreters.resolve(wanted, source=source)
        path = interpreter.sandbox_path
        why = f"Python {interpreter.version}" + (f", as {source} asks" if wanted else "")
        if interpreter.minor != interpreters.host().minor:
            scanners = scanner_steps(interpreter)
    venv = SetupStep(
        argv=(UV, "venv", "--quiet", "--allow-existing", "--python", path, ENV_DIR), why=why
    )
    return [venv], scanners


def _run(workspace: Workspace, step: SetupStep, timeout_s: float, log: SetupLog) -> None:
    argv = (SH, "-c", step.argv[0]) if step.shell else step.argv
    shown = shown_step(step)
    log.add(f"$ {shown}\n# {step.why}\n")
    result = workspace.exec(argv, phase=Phase.SETUP, timeout_s=timeout_s)
    log.add(_output(result.stdout, result.stderr))
    if result.ok:
        log.add(f"# ok in {result.duration_s:.1f} s\n")
        return
    if result.timed_out or result.limit_hit == "wall-clock":
        cause = f"it ran past the setup timeout of {timeout_s:g} s and was stopped"
    elif result.limit_hit:
        cause = f"the sandbox's {result.limit_hit} limit was hit"
    else:
        cause = f"exit status {result.exit_code}"
    log.add(f"# failed: {cause}\n")
    raise SetupStepFailed(step, shown, cause, log.text)


def _refused_hosts(log: str) -> list[str]:
    """The hosts named on the log's lines that tell of a refused or failed connection."""
    hosts: set[str] = set()
    for line in log.splitlines():
        if _EGRESS_REFUSED.search(line) or "Failed to fetch" in line or "sending request" in line:
            hosts.update(_URL_HOST.findall(line))
    return sorted(hosts)


def shown_step(step: SetupStep) -> str:
    """A step as the log shows it: programs by name, a factory script by its purpose."""
    if step.shell:
        return step.argv[0]
    argv = list(step.argv)
    if argv[:2] == [SH, "-c"]:
        return f"sh -c <script> {' '.join(a for a in argv[3:] if not a.startswith('--hash'))}"[:300]
    return " ".join([argv[0].rsplit("/", 1)[-1], *argv[1:]])


def _output(stdout: str, stderr: str) -> str:
    text = stdout + (("\n" if stdout and not stdout.endswith("\n") else "") + stderr)
    return text if not text or text.endswith("\n") else text + "\n"
