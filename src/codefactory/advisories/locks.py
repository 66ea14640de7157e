"""Resolved versions in lock files: `uv.lock`, `poetry.lock`, `Pipfile.lock`, `pylock.toml`.

A lock file names every package the repository installs, transitive ones included, so SCA
judges it as well as the direct pins. Packages that do not come from an index (the project
itself, a path, a git checkout) have no release to match and are skipped. A lock file that
cannot be parsed raises `LockFileInvalid`: an unread lock file is not a safe one.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from codefactory.advisories.errors import LockFileInvalid
from codefactory.advisories.pins import Pin

_PYLOCK = re.compile(r"^pylock\.[^/]+\.toml$")
_PYLOCK_LOCAL = frozenset({"vcs", "directory", "archive"})
_LOCAL_SOURCES = frozenset({"editable", "virtual", "directory", "path", "git", "url", "file"})


def is_lock_file(path_name: str) -> bool:
    """Whether a file name is a lock file this module reads."""
    base = PurePosixPath(path_name).name
    return base in _READERS or bool(_PYLOCK.match(base))


def find_locked(path_name: str, text: str) -> list[Pin]:
    """Every resolved `name==version` in a lock file, with the line naming the package."""
    base = PurePosixPath(path_name).name
    reader = _READERS.get(base, _pylock)
    try:
        return reader(path_name, text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise LockFileInvalid(path_name, 0, str(exc)) from exc
    except (TypeError, KeyError, AttributeError, ValueError) as exc:
        raise LockFileInvalid(path_name, 0, f"unexpected structure: {exc!r}") from exc


def _toml_packages(path_name: str, text: str, table: str) -> list[Pin]:
    """`[[table]]` entries with `name` and `version`, from an index, with their lines."""
    packages = tomllib.loads(text).get(table, [])
    if not isinstance(packages, list):
        raise LockFileInvalid(path_name, 0, f"`{table}` is not an array of tables")
    lines = _name_lines(text, table)
    pins: list[Pin] = []
    for index, package in enumerate(packages):
        name, version = package.get("name"), package.get("version")
        if not isinstance(name, str):
            raise LockFileInvalid(path_name, 0, f"a `[[{table}]]` entry has no name")
        if not isinstance(version, str) or _is_local(package.get("source")):
            continue
        if table == "packages" and _PYLOCK_LOCAL & set(package):
            continue  # PEP 751: from a VCS, a local directory or an archive URL, not an index
        line = lines[index] if index < len(lines) else 0
        pins.append(Pin(file=path_name, name=name, version=version, line=line))
    return pins


def _is_local(source: Any) -> bool:
    if not isinstance(source, dict):
        return False
    kind = source.get("type")  # poetry: {type = "git", url = ...}; uv: {git = "..."}
    return (isinstance(kind, str) and kind in _LOCAL_SOURCES) or bool(_LOCAL_SOURCES & set(source))


def _name_lines(text: str, table: str) -> list[int]:
    """For each `[[table]]` header in order, the line of its `name = ` key (else the header)."""
    found: list[int] = []
    waiting = False
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped == f"[[{table}]]":
            found.append(number)
            waiting = True
        elif stripped.startswith("["):
            waiting = False
        elif waiting and re.match(r"name\s*=", stripped):
            found[-1] = number
            waiting = False
    return found


def _uv(path_name: str, text: str) -> list[Pin]:
    return _toml_packages(path_name, text, "package")


def _poetry(path_name: str, text: str) -> list[Pin]:
    return _toml_packages(path_name, text, "package")


def _pylock(path_name: str, text: str) -> list[Pin]:
    return _toml_packages(path_name, text, "packages")


def _pipfile(path_name: str, text: str) -> list[Pin]:
    data = json.loads(text)
    lines = text.splitlines()
    pins: list[Pin] = []
    for section in ("default", "develop"):
        for name, entry in (data.get(section) or {}).items():
            version = entry.get("version") if isinstance(entry, dict) else None
            if not isinstance(version, str) or not version.startswith("=="):
                continue  # a path, a git checkout or an editable install
            line = next((n for n, text in enumerate(lines, 1) if f'"{name}": {{' in text), 0)
            pins.append(Pin(file=path_name, name=name, version=version[2:].strip(), line=line))
    return pins


_READERS: dict[str, Callable[[str, str], list[Pin]]] = {
    "uv.lock": _uv,
    "poetry.lock": _poetry,
    "Pipfile.lock": _pipfile,
    "pylock.toml": _pylock,
}
