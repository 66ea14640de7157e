"""The Python side of a repository: how its environment is installed into `/env`, which
Python it asks for, and which files decide both.

One layout is chosen, the most exact first:

- `uv.lock` → `uv sync --locked --all-groups --all-extras` into `/env`
  (`UV_PROJECT_ENVIRONMENT`). `--locked`, not `--frozen`: a lock file out of date with its
  `pyproject.toml` is a named failure ("The lockfile needs to be updated"), where `--frozen`
  would install the stale lock in silence. The project itself is installed editable, as
  `uv sync` does by default: the tests then import the workspace's code, never a copy.
- `poetry.lock` (or a `[tool.poetry]` project without one, locked first) → Poetry and its
  exporter, installed into a throwaway virtualenv under the command's private `/tmp` in the
  networked setup phase, export the lock's pins of every group and extra (`poetry export
  --all-groups --all-extras`), and uv installs them into `/env`, checking the lock's hashes,
  then the project itself, editable. Poetry is the only reader of its lock that knows its
  semantics (which packages each group needs, markers, a lock out of date with
  pyproject.toml, which export refuses); re-deriving that from the lock's pins would
  re-implement its graph walk. uv, not `poetry install`, does the install: it reads the
  index's simple API (PEP 503/691) as every other step does, where Poetry's installer needs
  PyPI's per-release JSON API, which index mirrors often lack.
- `Pipfile.lock` → its `default` and `develop` pins, with their hashes
  (`uv pip install --require-hashes`), then its editable and VCS entries.
- otherwise one `uv pip install` resolves everything the project declares together: the
  project itself (editable) with its test extras (PEP 621 optional dependencies, setup.cfg's
  or setup.py's `extras_require`), its test dependency groups (PEP 735, `include-group`
  followed by uv), the root requirements files with their `-r`/`-c` includes (followed by uv
  itself), root constraints files, and what tox.ini's `[testenv]` and the noxfile's test
  sessions install.

Test extras and groups are those named test, tests, testing or dev, and any that names pytest
or a pytest plugin. When the project has tests and none of that installs pytest, one more
step installs it. Nothing here runs anything; `sandbox/setup.py` executes the plan.
"""

from __future__ import annotations

import ast
import configparser
import re
import tomllib
from collections.abc import Sequence

from codefactory.projects.model import FileSource, PythonProject, RepositoryConfig, SetupStep
from codefactory.projects.python_locks import (
    ENV_PYTHON,
    Plan,
    is_pytest,
    pipfile_plan,
    poetry_plan,
    uv_plan,
)
from codefactory.projects.pyversion import setup_calls, target_version, wanted_python
from codefactory.projects.requirements_files import (
    RequirementFiles,
    find_requirement_files,
    normalise,
    read_requirement_file,
    requirement_names,
)
from codefactory.projects.testenvs import TestEnv, nox_env, tox_env
from codefactory.sandbox.layout import UV

TEST_NAMES = frozenset({"test", "tests", "testing", "dev"})
_TESTS = re.compile(r"(^|/)(tests?/|test_[^/]*\.py$|[^/]*_test\.py$|conftest\.py$)")


def detect_python(
    files: FileSource, config: RepositoryConfig
) -> tuple[PythonProject | None, list[str]]:
    """The Python project `files` hold (None when there is no sign of one) and the problems
    met reading it (a manifest that does not parse, an include that is missing)."""
    paths = files.paths()
    problems: list[str] = []
    pyproject = _toml(files, "pyproject.toml", problems)
    if not _is_python(paths, pyproject, config):
        return None, problems
    wanted = wanted_python(files, config, pyproject)
    if wanted.problem:
        problems.append(wanted.problem)
    plan = _plan(files, paths, pyproject)
    problems += plan.problems
    if _has_tests(paths, config) and not plan.installs_pytest and _runs_pytest(config):
        plan.steps.append(
            SetupStep(
                argv=(UV, "pip", "install", "--python", ENV_PYTHON, "pytest"),
                why="the project has tests and none of its files installs pytest",
            )
        )
    present = set(paths)
    plan.inputs |= {p for p in (".python-version", "setup.py", "setup.cfg") if p in present}
    project = PythonProject(
        layout=plan.layout,
        python=wanted.python,
        python_source=wanted.source,
        setup=tuple(plan.steps),
        inputs=tuple(sorted(plan.inputs)),
        target_version=target_version(wanted.python),
    )
    return project, problems


def _plan(files: FileSource, paths: list[str], pyproject: dict[str, object] | None) -> Plan:
    present = set(paths)
    if "uv.lock" in present and pyproject is not None:
        return uv_plan(files, paths)
    tool = pyproject.get("tool", {}) if pyproject else {}
    poetry = tool.get("poetry", {}) if isinstance(tool, dict) else {}
    if "poetry.lock" in present or (
        isinstance(poetry, dict) and ("dependencies" in poetry or "group" in poetry)
    ):
        return poetry_plan(files, present, pyproject)
    if "Pipfile.lock" in present:
        return pipfile_plan(files)
    plan = _declared(files, paths, pyproject)
    if "Pipfile" in present and plan.layout == "none":
        plan.problems.append("Pipfile has no Pipfile.lock: commit the lock (`pipenv lock`)")
    return plan


def _declared(files: FileSource, paths: list[str], pyproject: dict[str, object] | None) -> Plan:
    """Everything a lock-less project declares, resolved together by one `uv pip install`."""
    present = set(paths)
    plan = Plan(layout="none")
    why: list[str] = []
    args: list[str] = []
    names: set[str] = set()
    install_project = False
    extras: list[str] = []
    project = (pyproject or {}).get("project")
    if isinstance(project, dict) or (pyproject or {}).get("build-system"):
        plan.inputs.add("pyproject.toml")
        install_project, plan.layout = True, "pep621"
        all_extras = _optional_dependencies(project if isinstance(project, dict) else {})
        extras = _test_names(all_extras)
        deps = project.get("dependencies", []) if isinstance(project, dict) else []
        names |= _names(deps if isinstance(deps, list) else [])
        names |= {n for e in extras for n in _names(all_extras[e])}
        why.append("pyproject.toml [project]")
    groups = _dependency_groups(pyproject or {})
    chosen_groups = _test_names(groups)
    if chosen_groups:
        plan.layout = "pep621"
        plan.inputs.add("pyproject.toml")
        why.append("pyproject.toml [dependency-groups] " + ", ".join(chosen_groups))
        for group in chosen_groups:
            args += ["--group", group]
            names |= _names(groups[group])
    if _setuptools_project(files, present):
        if plan.layout == "none":
            plan.layout = "setuptools"
        if not install_project:
            why.append("setup.py / setup.cfg")
        install_project = True
        setup_extras = _setup_extras(files)
        extras += [e for e in _test_names(setup_extras) if e not in extras]
        names |= {n for e in extras if e in setup_extras for n in _names(setup_extras[e])}
    requirements = find_requirement_files(files, paths)
    for env in (tox_env(files), nox_env(files)):
        if env is not None:
            plan.inputs.add(env.source.split()[0])
            install_project |= env.install_project and (
                pyproject is not None or "setup.py" in present
            )
            extras += [e for e in env.extras if e not in extras]
            _add_env(files, env, requirements, args, why)
            names |= _names(env.requirements)
    if requirements.roots:
        plan.layout = "requirements" if plan.layout == "none" else plan.layout
        why += requirements.roots
    plan.problems += requirements.problems
    plan.inputs |= requirements.inputs
    names |= requirements.names
    for root in requirements.roots:
        args += ["-r", root]
    for constraints in requirements.constraints:
        args += ["-c", constraints]
    if install_project:
        args = ["-e", "." + (f"[{','.join(extras)}]" if extras else ""), *args]
    if args:
        plan.steps.append(
            SetupStep(
                argv=(UV, "pip", "install", "--python", ENV_PYTHON, *args),
                why="; ".join(why) or "the project",
            )
        )
    plan.installs_pytest = any(is_pytest(n) for n in names)
    return plan


def _add_env(
    files: FileSource, env: TestEnv, found: RequirementFiles, args: list[str], why: list[str]
) -> None:
    why.append(env.source + (f" (not read: {', '.join(env.skipped)})" if env.skipped else ""))
    for path in env.requirement_files:
        if path not in found.roots:
            read_requirement_file(files, path, found)
            args += ["-r", path]
    for path in env.constraint_files:
        read_requirement_file(files, path, found)
        args += ["-c", path]
    args += env.requirements


def _toml(files: FileSource, path: str, problems: list[str]) -> dict[str, object] | None:
    data = files.read(path)
    if data is None:
        return None
    try:
        return tomllib.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        problems.append(f"{path} is not valid TOML: {err}")
        return None
    except (RecursionError, MemoryError) as err:
        problems.append(f"{path} is nested too deeply (or too large) to read: {type(err).__name__}")
        return None


def _is_python(
    paths: list[str], pyproject: dict[str, object] | None, config: RepositoryConfig
) -> bool:
    markers = ("setup.py", "setup.cfg", "Pipfile", "Pipfile.lock", "uv.lock", "poetry.lock",
               "tox.ini", "noxfile.py", ".python-version")  # fmt: skip
    if config.python or pyproject is not None or any(p in markers for p in paths):
        return True
    return any(p.endswith(".py") or p.endswith("requirements.txt") for p in paths)


def _has_tests(paths: list[str], config: RepositoryConfig) -> bool:
    return bool(config.test_paths) or any(_TESTS.search(p) for p in paths)


def _runs_pytest(config: RepositoryConfig) -> bool:
    command = config.test_command
    return command is None or any("pytest" in word for word in command)


def _names(requirements: Sequence[object]) -> set[str]:
    text = "\n".join(r for r in requirements if isinstance(r, str))
    return requirement_names(text)


def _test_names(tables: dict[str, list[object]]) -> list[str]:
    """The extras or groups a test run needs: named like a test one, or naming pytest."""
    chosen = []
    for name, requirements in tables.items():
        if normalise(name) in TEST_NAMES or any(is_pytest(n) for n in _names(requirements)):
            chosen.append(name)
    return chosen


def _optional_dependencies(project: dict[str, object]) -> dict[str, list[object]]:
    table = project.get("optional-dependencies", {})
    if not isinstance(table, dict):
        return {}
    return {k: v for k, v in table.items() if isinstance(v, list)}


def _dependency_groups(pyproject: dict[str, object]) -> dict[str, list[object]]:
    """PEP 735 groups, each with its `include-group`s expanded (cycles stop)."""
    table = pyproject.get("dependency-groups", {})
    if not isinstance(table, dict):
        return {}
    raw = {k: v for k, v in table.items() if isinstance(v, list)}

    def expand(name: str, seen: frozenset[str]) -> list[object]:
        out: list[object] = []
        for item in raw.get(name, []):
            if isinstance(item, dict) and isinstance(item.get("include-group"), str):
                included = item["include-group"]
                if included not in seen:
                    out += expand(included, seen | {included})
            else:
                out.append(item)
        return out

    return {name: expand(name, frozenset({name})) for name in raw}


def _setuptools_project(files: FileSource, present: set[str]) -> bool:
    if "setup.py" in present:
        return True
    if "setup.cfg" not in present:
        return False
    parser = _setup_cfg(files)
    return parser is not None and (parser.has_section("metadata") or parser.has_section("options"))


def _setup_cfg(files: FileSource) -> configparser.ConfigParser | None:
    data = files.read("setup.cfg")
    if data is None:
        return None
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(data.decode("utf-8-sig", "replace"))
    except configparser.Error:
        return None
    return parser


def _setup_extras(files: FileSource) -> dict[str, list[object]]:
    """`extras_require` from setup.cfg's `[options.extras_require]` and setup.py's literal
    `setup(extras_require={...})` (a dict literal, or a module-level name bound to one)."""
    extras: dict[str, list[object]] = {}
    parser = _setup_cfg(files)
    if parser is not None and parser.has_section("options.extras_require"):
        for name, value in parser.items("options.extras_require"):
            extras[name] = [line.strip() for line in value.splitlines() if line.strip()]
    source = files.read("setup.py")
    if source is None:
        return extras
    for call in setup_calls(source):
        for keyword in call.keywords:
            if keyword.arg == "extras_require":
                try:
                    table = _literal_dict(keyword.value, source)
                except (RecursionError, MemoryError):
                    continue  # too deep to read: as a non-literal table, nothing
                extras.update(table)
    return extras


def _literal_dict(node: ast.expr, source: bytes) -> dict[str, list[object]]:
    if isinstance(node, ast.Name):
        name = node.id
        for statement in ast.parse(source).body:
            if isinstance(statement, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in statement.targets
            ):
                node = statement.value
    if not isinstance(node, ast.Dict):
        return {}
    out: dict[str, list[object]] = {}
    for key, value in zip(node.keys, node.values, strict=True):
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            try:
                literal = ast.literal_eval(value)
            except ValueError:
                literal = []
            out[key.value] = list(literal) if isinstance(literal, list | tuple) else []
    return out
