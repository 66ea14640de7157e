"""Test environments a project declares for tox (`tox.ini`) and nox (`noxfile.py`), read
statically: tox.ini as INI, the noxfile with `ast` (never imported, never run)."""

from __future__ import annotations

import ast
import configparser
import re
from dataclasses import dataclass, field

from codefactory.projects.model import FileSource

_TEST_NAME = re.compile(r"test|pytest|unit", re.I)
_FACTOR = re.compile(r"^[\w.,!-]+\s*:\s+")
"""A factor-conditional tox line (`py312: mock`), which applies to some environments only."""


@dataclass
class TestEnv:
    """What one declared test environment installs."""

    source: str
    """`tox.ini [testenv]`, `noxfile.py session tests`."""
    requirements: list[str] = field(default_factory=list)
    """Requirement specifiers (PEP 508)."""
    requirement_files: list[str] = field(default_factory=list)
    """Requirements files it installs with `-r`, relative to the root."""
    constraint_files: list[str] = field(default_factory=list)
    install_project: bool = False
    extras: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """What could not be read statically (a substitution, a computed argument)."""


def tox_env(files: FileSource) -> TestEnv | None:
    """tox.ini's `[testenv]` (the defaults every test environment inherits): its `deps`
    (`-r{toxinidir}/…` lines included), `extras`, and the project unless `skip_install`."""
    data = files.read("tox.ini")
    if data is None:
        return None
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(data.decode("utf-8-sig", "replace"))
    except configparser.Error:
        return TestEnv(source="tox.ini", skipped=["tox.ini does not parse as INI"])
    if not parser.has_section("testenv"):
        return None
    section = parser["testenv"]
    env = TestEnv(source="tox.ini [testenv]")
    env.install_project = section.get("skip_install", "false").strip().lower() != "true"
    env.extras = _words(section.get("extras", ""))
    for raw in section.get("deps", "").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if _FACTOR.match(line):
            env.skipped.append(line)
            continue
        line = line.replace("{toxinidir}/", "").replace("{toxinidir}", ".")
        if "{" in line:
            env.skipped.append(line)
            continue
        _add_argument(env, line)
    return env


def nox_env(files: FileSource) -> TestEnv | None:
    """The `session.install(...)` arguments of the noxfile's test sessions (a session whose
    name says test, else every session that installs pytest); literal strings only. A
    noxfile that does not parse, or is nested too deeply to read, is named in `skipped`."""
    try:
        return _nox_env(files)
    except (RecursionError, MemoryError) as err:
        kind = type(err).__name__
        return TestEnv(source="noxfile.py", skipped=[f"noxfile.py is nested too deeply ({kind})"])


def _nox_env(files: FileSource) -> TestEnv | None:
    data = files.read("noxfile.py")
    if data is None:
        return None
    try:
        tree = ast.parse(data)
    except (SyntaxError, ValueError):
        return TestEnv(source="noxfile.py", skipped=["noxfile.py does not parse"])
    sessions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and _is_session(n)]
    chosen = [s for s in sessions if _TEST_NAME.search(_session_name(s))]
    if not chosen:
        chosen = [s for s in sessions if "pytest" in ast.unparse(s)]
    if not chosen:
        return None
    env = TestEnv(source="noxfile.py session " + ", ".join(_session_name(s) for s in chosen))
    for session in chosen:
        for call in ast.walk(session):
            if _is_install(call):
                assert isinstance(call, ast.Call)
                _add_call(env, call)
    return env


def _add_call(env: TestEnv, call: ast.Call) -> None:
    args = list(call.args)
    while args:
        arg = args.pop(0)
        if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
            env.skipped.append(ast.unparse(arg))
            continue
        value = arg.value
        if value in ("-r", "--requirement", "-c", "--constraint", "-e", "--editable") and args:
            following = args.pop(0)
            if isinstance(following, ast.Constant) and isinstance(following.value, str):
                value = f"{value} {following.value}"
            else:
                env.skipped.append(ast.unparse(following))
                continue
        _add_argument(env, value)


def _add_argument(env: TestEnv, line: str) -> None:
    """One pip argument: `-r file`, `-c file`, `-e .`, `.[extras]`, or a requirement."""
    flag, _, rest = line.partition(" ")
    for short, long_ in (("-r", "--requirement"), ("-c", "--constraint"), ("-e", "--editable")):
        if flag == long_ or flag == short:
            line = f"{short} {rest.strip()}"
            break
        if flag.startswith(short) and len(flag) > 2 and not rest:
            line = f"{short} {flag[2:]}"
            break
    if line.startswith("-r "):
        env.requirement_files.append(_relative(line[3:]))
    elif line.startswith("-c "):
        env.constraint_files.append(_relative(line[3:]))
    elif line.startswith("-e ") or line.startswith((".", "./")):
        target = line[3:].strip() if line.startswith("-e ") else line
        path, _, extras = target.partition("[")
        if _relative(path) == ".":
            env.install_project = True
            env.extras += _words(extras.rstrip("]").replace(",", " "))
        else:
            env.skipped.append(line)
    elif line.startswith("-"):
        env.skipped.append(line)
    else:
        env.requirements.append(line)


def _relative(path: str) -> str:
    path = path.strip().strip("\"'")
    while path.startswith("./"):
        path = path[2:]
    return path.rstrip("/") or "."


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[\s,]+", text) if w]


def _is_session(node: ast.FunctionDef) -> bool:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name == "session":
            return True
    return False


def _session_name(node: ast.FunctionDef) -> str:
    for decorator in node.decorator_list:
        if isinstance(decorator, ast.Call):
            for keyword in decorator.keywords:
                if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                    return str(keyword.value.value)
    return node.name


def _is_install(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "install"
    )
