"""Which Python a project asks for: the repository config's `python`, `.python-version`, then
`requires-python` (PEP 621; setup.cfg's and setup.py's `python_requires`), in that order."""

from __future__ import annotations

import ast
import configparser
import re
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from codefactory.projects.model import FileSource, RepositoryConfig

_LOWEST_TARGET = 7
"""Linters' oldest target (`py37`, ruff's floor): a project allowing older still parses as 3.7."""
_NEWEST_MINOR = 40
_VERSION_FILE = re.compile(r"(?:cpython-|python)?(?P<version>3(?:\.\d+){0,2})(?:[-+].*)?")


@dataclass(frozen=True)
class PythonWanted:
    """The Python a project asks for and which file said so (None and "" when none does)."""

    python: str | None
    source: str
    problem: str | None = None


def wanted_python(
    files: FileSource, config: RepositoryConfig, pyproject: dict[str, object] | None
) -> PythonWanted:
    """The first of: config `python`, `.python-version`'s first version line, `requires-python`."""
    if config.python:
        return PythonWanted(config.python, f"{config.source} python")
    data = files.read(".python-version")
    if data is not None:
        for line in data.decode("utf-8-sig", "replace").splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            found = _VERSION_FILE.fullmatch(line)
            if found is None:
                return PythonWanted(
                    None, ".python-version", f".python-version names {line!r}, not a CPython 3.X"
                )
            return PythonWanted(found["version"], ".python-version")
    project = (pyproject or {}).get("project")
    if isinstance(project, dict) and isinstance(project.get("requires-python"), str):
        return _specifier(project["requires-python"], "pyproject.toml requires-python")
    for source, text in (("setup.cfg", _setup_cfg(files)), ("setup.py", _setup_py(files))):
        if text:
            return _specifier(text, f"{source} python_requires")
    return PythonWanted(None, "")


def target_version(python: str | None) -> str | None:
    """The lowest `3.X` `python` (a version or PEP 440 specifier) allows, as linters name it
    (`py312`); None when it says nothing or allows no 3.X."""
    if not python:
        return None
    try:
        version = Version(python)
        return f"py3{max(version.minor, _LOWEST_TARGET)}" if version.major == 3 else None
    except InvalidVersion:
        pass
    try:
        spec = SpecifierSet(python)
    except InvalidSpecifier:
        return None
    for minor in range(0, _NEWEST_MINOR):
        if any(spec.contains(f"3.{minor}.{patch}", prereleases=True) for patch in range(0, 30)):
            return f"py3{max(minor, _LOWEST_TARGET)}"
    return None


def _specifier(text: str, source: str) -> PythonWanted:
    text = text.strip()
    try:
        SpecifierSet(text)
    except InvalidSpecifier:
        return PythonWanted(None, source, f"{source} is not a PEP 440 specifier: {text!r}")
    return PythonWanted(text, source)


def _setup_cfg(files: FileSource) -> str | None:
    data = files.read("setup.cfg")
    if data is None:
        return None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(data.decode("utf-8-sig", "replace"))
    except configparser.Error:
        return None
    return parser.get("options", "python_requires", fallback=None)


def _setup_py(files: FileSource) -> str | None:
    data = files.read("setup.py")
    if data is None:
        return None
    for call in setup_calls(data):
        for keyword in call.keywords:
            if keyword.arg == "python_requires" and isinstance(keyword.value, ast.Constant):
                return str(keyword.value.value)
    return None


def setup_calls(source: bytes) -> list[ast.Call]:
    """The `setup(...)` / `setuptools.setup(...)` calls of a setup.py, read with `ast` (never
    run); none when it does not parse, or is nested too deeply for the parser."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name == "setup":
                calls.append(node)
    return calls
