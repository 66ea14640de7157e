"""What test environments install: tox.ini's `[testenv]` and `[testenv:*]` `deps`, and a
noxfile's `session.install(...)` arguments (and `session.run("pip", "install", ...)`).

tox.ini is read as tox 4 reads `deps`: one pip argument a line, a factor condition
(`py312: mock`) read as applying (some environment installs it), `{toxinidir}` the tox.ini's
folder, a `{[section]key}` reference read where it points; any other substitution
(`{env:X}`, `{posargs}`) cannot be known statically and is an `Unreadable` spot. The noxfile
is read with `ast`, never imported or run: every literal string argument is a pip argument,
anything else (a name, a call, `*args`) is an `Unreadable` spot naming the expression.
`-r`/`-c` arguments are includes, followed by the reader (once per file).
"""

from __future__ import annotations

import ast
import re

from codefactory.advisories.declared import Declared, shown
from codefactory.advisories.ini import ini_values

_FACTOR = re.compile(r"^!?[\w.-]+(?:\s*,\s*!?[\w.-]+)*\s*:\s+")
_REFERENCE = re.compile(r"^\{\[(?P<section>[^\]]+)\](?P<key>[\w-]+)\}$")
_WITH_FILE = ("-r", "--requirement", "-c", "--constraint", "-e", "--editable")
_TAKES_VALUE = frozenset({
    "-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--python", "-t",
    "--target", "--prefix", "--root", "--platform", "--python-version", "--implementation",
    "--abi", "--no-binary", "--only-binary", "--progress-bar", "--src", "--config-settings",
    "-C", "--upgrade-strategy", "--trusted-host", "--cache-dir", "--log",
})  # fmt: skip
"""pip install options whose value is the next argument (a URL, a folder: no requirement)."""
_PIP_INSTALL = (
    ("pip", "install"), ("pip3", "install"), ("python", "-m", "pip", "install"),
    ("python3", "-m", "pip", "install"), ("uv", "pip", "install"),
)  # fmt: skip


def parse_tox_ini(path: str, text: str) -> Declared:
    """Every pip argument of every `[testenv]`/`[testenv:*]` `deps` of a tox.ini."""
    found = Declared()
    values = ini_values(text)
    for (section, key), lines in values.items():
        if key == "deps" and _is_testenv(section):
            _deps(found, path, lines, values, seen={(section, key)})
    return found


def _is_testenv(section: str) -> bool:
    return section == "testenv" or section.startswith("testenv:")


def _deps(
    found: Declared,
    path: str,
    lines: list[tuple[int, str]],
    values: dict[tuple[str, str], list[tuple[int, str]]],
    seen: set[tuple[str, str]],
) -> None:
    for number, raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = _FACTOR.sub("", line)
        reference = _REFERENCE.match(line)
        if reference is not None:
            target = (reference.group("section"), reference.group("key"))
            if target in seen or (_is_testenv(target[0]) and target[1] == "deps"):
                continue  # read on its own
            if target not in values:
                found.unreadable(path, number, f"{line} names no value of this tox.ini")
                continue
            seen.add(target)
            _deps(found, path, values[target], values, seen)
            continue
        line = line.replace("{toxinidir}", ".")
        if "{" in line:
            reason = f"deps line {line!r} holds a tox substitution SCA cannot resolve statically"
            found.unreadable(path, number, reason)
            continue
        found.pip_line(path, number, line)


def parse_noxfile(path: str, text: str) -> Declared:
    """Every pip argument of the noxfile's `session.install(...)` calls (and of
    `session.run("pip", "install", ...)`, `session.run_install(...)` alike), in every
    session and helper."""
    found = Declared()
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        found.unreadable(
            path,
            getattr(exc, "lineno", 0) or 0,
            f"the noxfile does not parse: {exc or type(exc).__name__}",
        )
        return found
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr == "install":
            _install(found, path, node.args)
        elif node.func.attr in ("run", "run_install"):
            words = [a.value if isinstance(a, ast.Constant) else None for a in node.args]
            for prefix in _PIP_INSTALL:
                if tuple(words[: len(prefix)]) == prefix:
                    _install(found, path, node.args[len(prefix) :])
                    break
    return found


def install_arguments(found: Declared, path: str, args: list[tuple[int, str | None]]) -> None:
    """pip install's arguments, each with its 1-based line (None: an argument that could not
    be read, already reported): requirements, `-r`/`-c`/`-e` with their file, options (an
    option's value, such as an index URL, is no requirement)."""
    while args:
        line, value = args.pop(0)
        if value is None:
            continue
        if value in _WITH_FILE:
            if not args:
                found.unreadable(path, line, f"{value} without a file")
                continue
            following = args.pop(0)[1]
            if following is not None:
                found.pip_line(path, line, f"{value} {following}")
            continue
        if value.startswith("-"):
            if value in _TAKES_VALUE and args:
                args.pop(0)
            continue  # an option (`--upgrade`, `--pre`): it installs nothing on its own
        found.pip_line(path, line, value)


def _install(found: Declared, path: str, args: list[ast.expr]) -> None:
    install_arguments(found, path, [(arg.lineno, _literal(found, path, arg)) for arg in args])


def _literal(found: Declared, path: str, arg: ast.expr) -> str | None:
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    reason = (
        f"session.install argument `{shown(arg)}` is not a literal string: SCA reads the "
        "noxfile without running it"
    )
    found.unreadable(path, arg.lineno, reason)
    return None
