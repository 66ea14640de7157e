"""The requirements setuptools installs with a project: setup.cfg's `[options]
install_requires` and `setup_requires` and `[options.extras_require]`, and setup.py's
`setup(install_requires=..., setup_requires=..., extras_require=...)`. (`setup_requires` is
what `setuptools.build_meta` asks pip to install into the build environment, so it runs in
the setup phase; `tests_require` is installed by nothing and is not read.)

setup.cfg is read as setuptools reads it (`setuptools.config.setupcfg`, over `configparser`):
a value of several lines is one requirement a line, a one-line value is split at `;`, a
piece starting with `#` is a comment, and `file: a.txt, b.txt` names requirements files
(followed as includes). setup.py is read with `ast`, never imported or run: a literal list or
tuple of strings (or a module-level name bound once to one and never changed) is read; any
other expression (a call, a comprehension, a concatenation, `**kwargs`) is an `Unreadable`
spot naming the expression, never a silent skip.
"""

from __future__ import annotations

import ast

from codefactory.advisories.declared import Declared, shown
from codefactory.advisories.ini import ini_values
from codefactory.advisories.requirements import Include
from codefactory.projects.pyversion import setup_calls

_LISTS = ("install_requires", "setup_requires")


def parse_setup_cfg(path: str, text: str) -> Declared:
    """Every requirement of setup.cfg's `[options] install_requires`/`setup_requires` and
    `[options.extras_require]` with its 1-based line; `file:` values become includes."""
    found = Declared()
    for (section, key), lines in ini_values(text).items():
        if section == "options" and key in _LISTS:
            _cfg_list(found, path, lines)
        elif section == "options.extras_require":
            _cfg_list(found, path, lines)
    return found


def _cfg_list(found: Declared, path: str, lines: list[tuple[int, str]]) -> None:
    """setuptools' `_parse_requirements_list`: `file:`, else one requirement a line (one line:
    split at `;`), `#` pieces dropped."""
    value = "\n".join(text for _, text in lines).strip()
    if value.startswith("file:"):
        for target in value[len("file:") :].split(","):
            if target.strip():
                found.includes.append(Include(target=target.strip(), line=lines[0][0]))
        return
    filled = [(number, text.strip()) for number, text in lines if text.strip()]
    if len(filled) == 1 and len(lines) == 1:
        number, text = filled[0]
        filled = [(number, piece.strip()) for piece in text.split(";") if piece.strip()]
    for number, text in filled:
        if not text.startswith("#"):
            found.requirement(path, number, text)


def parse_setup_py(path: str, text: str) -> Declared:
    """Every requirement of the `install_requires`, `setup_requires` and `extras_require`
    keywords of setup.py's `setup(...)` calls, read with `ast`; what is not a literal is
    unreadable."""
    found = Declared()
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        reason = f"setup.py does not parse: {exc or type(exc).__name__}"
        found.unreadable(path, getattr(exc, "lineno", 0) or 0, reason)
        return found
    reader = _SetupPy(path, tree, found)
    for call in setup_calls(text.encode()):
        for keyword in call.keywords:
            if keyword.arg is None:
                found.unreadable(
                    path,
                    keyword.value.lineno,
                    f"setup(**{shown(keyword.value)}) passes arguments SCA cannot read "
                    "without running setup.py",
                )
            elif keyword.arg in _LISTS:
                reader.strings(keyword.value, keyword.arg)
            elif keyword.arg == "extras_require":
                reader.table(keyword.value, "extras_require")
    return found


class _SetupPy:
    def __init__(self, path: str, tree: ast.Module, found: Declared) -> None:
        self.path = path
        self.tree = tree
        self.found = found
        self.parents = {
            child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)
        }

    def strings(self, node: ast.expr, where: str) -> None:
        node = self._bound(node)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            for offset, line in enumerate(node.value.splitlines()):
                if line.strip() and not line.strip().startswith("#"):
                    self.found.requirement(self.path, node.lineno + offset, line.strip())
            return
        if not isinstance(node, ast.List | ast.Tuple):
            return self._refuse(node, where, "is not a literal list of strings")
        for element in node.elts:
            if isinstance(element, ast.Constant) and isinstance(element.value, str):
                self.found.requirement(self.path, element.lineno, element.value)
            else:
                self._refuse(element, where, "is not a literal string")
        return None

    def table(self, node: ast.expr, where: str) -> None:
        node = self._bound(node)
        if not isinstance(node, ast.Dict):
            return self._refuse(node, where, "is not a literal dict of lists")
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:
                self._refuse(value, where, "is unpacked into the dict (`**`)")
            elif isinstance(key, ast.Constant) and isinstance(key.value, str):
                self.strings(value, f"{where}[{key.value!r}]")
            else:
                self._refuse(key, where, "is not a literal extra name")
        return None

    def _refuse(self, node: ast.expr, where: str, what: str) -> None:
        reason = f"{where}: `{shown(node)}` {what}: SCA reads setup.py without running it"
        self.found.unreadable(self.path, node.lineno, reason)

    def _bound(self, node: ast.expr) -> ast.expr:
        """The literal a module-level name is bound to, when it is bound once and only read
        as a `setup(...)` keyword or a dict value (so nothing can change it); else `node`."""
        if not isinstance(node, ast.Name):
            return node
        uses = [n for n in ast.walk(self.tree) if isinstance(n, ast.Name) and n.id == node.id]
        stores = [n for n in uses if not isinstance(n.ctx, ast.Load)]
        if len(stores) != 1:
            return node
        assignment = self.parents.get(stores[0])
        if not (
            isinstance(assignment, ast.Assign)
            and assignment in self.tree.body
            and assignment.targets == [stores[0]]
        ):
            return node
        for use in uses:
            if use is not stores[0] and not self._read_only(use):
                return node
        if any(isinstance(n, ast.Global | ast.Nonlocal) for n in ast.walk(self.tree)):
            return node
        return assignment.value

    def _read_only(self, use: ast.Name) -> bool:
        parent = self.parents.get(use)
        if isinstance(parent, ast.Dict):
            return True
        call = self.parents.get(parent) if isinstance(parent, ast.keyword) else None
        if not isinstance(call, ast.Call):
            return False
        func = call.func
        return (func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")) == "setup"
