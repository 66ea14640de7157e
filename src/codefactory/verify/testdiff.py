"""Python test modules compared by their syntax trees, not their text.

For a changed test module: which functions and classes the change deleted, whose assertions
it removed or rewrote, which it rewrote otherwise, and which tests it only added. Module-level
code runs when pytest collects the file, before any test: new module-level code other than
imports of new names, definitions and constant assignments is reported too, since it can
change what every test of the session sees (patching the code under test, say).

Trees are compared with `ast.dump` (no line numbers), so moving a test or reformatting it is
no edit. Standard library only.
"""

from __future__ import annotations

import ast
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

ASSERTING_CALLS = ("assert", "raises", "warns", "deprecated_call", "fail")
"""A call whose name starts with one of these asserts (`self.assertEqual`, `pytest.raises`,
`mock.assert_called_once_with`)."""
_Def = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


@dataclass(frozen=True, kw_only=True)
class TestEdit:
    """One edit of an existing test module: a rule id, a 1-based line (0: none) and why."""

    __test__ = False  # not a pytest test class

    rule: str
    line: int
    message: str


@dataclass(frozen=True, kw_only=True)
class ModuleComparison:
    """The edits of one test module and the test functions it only added (qualified names)."""

    edits: tuple[TestEdit, ...]
    added: tuple[str, ...]


def compare_test_module(path: str, base: bytes, new: bytes) -> ModuleComparison:
    """Compare the base and new versions of an existing test module at `path`."""
    try:
        before = ast.parse(base)
    except (SyntaxError, ValueError):  # ValueError: a NUL byte (Python 3.11)
        return ModuleComparison(edits=(), added=())  # nothing to weaken: it never ran
    try:
        after = ast.parse(new)
    except (SyntaxError, ValueError) as exc:
        line = exc.lineno or 0 if isinstance(exc, SyntaxError) else 0
        message = f"{path} no longer parses ({exc}): none of its tests can run"
        return ModuleComparison(
            edits=(TestEdit(rule="test-modified", line=line, message=message),),
            added=(),
        )
    old_defs, new_defs = _definitions(before), _definitions(after)
    edits = [*_definition_edits(path, old_defs, new_defs), *_module_edits(path, before, after)]
    added = tuple(n for n in new_defs if n not in old_defs and _is_test(n, new_defs[n][-1]))
    return ModuleComparison(edits=tuple(edits), added=added)


def new_test_module(path: str, new: bytes) -> ModuleComparison:
    """A test module the change added: its tests, and module-level code it runs at import."""
    try:
        tree = ast.parse(new)
    except (SyntaxError, ValueError):  # ValueError: a NUL byte (Python 3.11)
        return ModuleComparison(edits=(), added=())  # the test run reports it
    defs = _definitions(tree)
    added = tuple(n for n, nodes in defs.items() if _is_test(n, nodes[-1]))
    edits = tuple(_code_added(path, s, set()) for s in _statements(tree) if not _inert(s, set()))
    return ModuleComparison(edits=edits, added=added)


def assertions(node: ast.AST) -> Counter[str]:
    """Each assertion under `node` (an `assert` statement or an asserting call), by its tree."""
    found: Counter[str] = Counter()
    for child in ast.walk(node):
        if isinstance(child, ast.Assert) or (
            isinstance(child, ast.Call) and _call_name(child).startswith(ASSERTING_CALLS)
        ):
            found[ast.dump(child)] += 1
    return found


def _definition_edits(
    path: str, old: dict[str, list[_Def]], new: dict[str, list[_Def]]
) -> Iterator[TestEdit]:
    deleted: list[str] = []
    for name, nodes in old.items():
        after = new.get(name, [])
        if any(name.startswith(d + ".") for d in deleted):
            continue  # its class is reported deleted
        if not after:
            deleted.append(name)
            what = _what(name, nodes[-1])
            message = f"the change deletes {what} `{name}` from {path}"
            yield TestEdit(rule="test-deleted", line=0, message=message)
        elif len(after) > len(nodes):
            message = f"`{name}` is defined again in {path}: the later definition replaces it"
            yield TestEdit(rule="test-modified", line=after[-1].lineno, message=message)
        elif [_shape(n) for n in nodes] != [_shape(n) for n in after]:
            yield _changed(path, name, nodes[-1], after[-1])


def _changed(path: str, name: str, before: _Def, after: _Def) -> TestEdit:
    what = _what(name, before)
    if not isinstance(before, ast.ClassDef):
        missing = assertions(before) - assertions(after)
        if missing:
            removed = _unparse(next(iter(missing)), before)
            message = (
                f"the change removes or rewrites the assertion `{removed}` of {what} `{name}` "
                f"in {path}"
            )
            return TestEdit(rule="assertion-removed", line=after.lineno, message=message)
    message = f"the change rewrites {what} `{name}` in {path}"
    return TestEdit(rule="test-modified", line=after.lineno, message=message)


def _module_edits(path: str, before: ast.Module, after: ast.Module) -> Iterator[TestEdit]:
    """Module-level statements removed, or added ones that run more than imports and constants."""
    left = Counter(ast.dump(s) for s in _statements(before))
    bound = _bound_names(before)
    for statement in _statements(after):
        key = ast.dump(statement)
        if left[key] > 0:
            left[key] -= 1
        elif not _inert(statement, bound):
            yield _code_added(path, statement, bound)
    for statement in _statements(before):
        # an import removed (ruff's F401 fix) cannot make a failing test pass; a test that
        # needed it errors in the tests check
        if left[ast.dump(statement)] > 0 and not isinstance(statement, ast.Import | ast.ImportFrom):
            left[ast.dump(statement)] -= 1
            message = f"the change removes module-level code from {path}: `{_short(statement)}`"
            yield TestEdit(rule="test-modified", line=0, message=message)


def _code_added(path: str, statement: ast.stmt, bound: set[str]) -> TestEdit:
    rebinds = sorted(_binds(statement) & bound)
    if rebinds:
        message = (
            f"the change rebinds `{', '.join(rebinds)}` at module level in {path}, which the "
            f"existing tests use: `{_short(statement)}`"
        )
        return TestEdit(rule="test-modified", line=statement.lineno, message=message)
    message = (
        f"the change adds module-level code to {path}; it runs when pytest collects the file, "
        f"before any test: `{_short(statement)}`"
    )
    return TestEdit(rule="module-code-added", line=statement.lineno, message=message)


def _inert(statement: ast.stmt, bound: set[str]) -> bool:
    """An import or constant binding only new names, or a docstring: runs nothing of note."""
    if _binds(statement) & bound:
        return False
    if isinstance(statement, ast.Import | ast.ImportFrom):
        return True
    if isinstance(statement, ast.Expr):
        return isinstance(statement.value, ast.Constant)
    if isinstance(statement, ast.Assign):
        targets_ok = all(isinstance(t, ast.Name) for t in statement.targets)
        return targets_ok and _inert_value(statement.value)
    if isinstance(statement, ast.AnnAssign):
        return isinstance(statement.target, ast.Name) and (
            statement.value is None or _inert_value(statement.value)
        )
    return False


def _inert_value(value: ast.expr) -> bool:
    """Literals, names and attributes, and pytest marks or params: no other call."""
    for node in ast.walk(value):
        if isinstance(node, ast.Call) and not _call_name(node, full=True).startswith(
            ("pytest.mark.", "pytest.param")
        ):
            return False
        if isinstance(node, ast.Lambda | ast.NamedExpr | ast.Await | ast.Yield | ast.YieldFrom):
            return False
    return True


def _definitions(tree: ast.Module) -> dict[str, list[_Def]]:
    """Functions and classes by qualified name (`Class.test_x`), all definitions in order."""
    found: dict[str, list[_Def]] = {}

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, _Def):
                found.setdefault(prefix + node.name, []).append(node)
                if isinstance(node, ast.ClassDef):
                    visit(node.body, prefix + node.name + ".")

    visit(tree.body, "")
    return found


def _shape(node: _Def) -> str:
    """What a definition is, without line numbers; a class without its methods (compared
    on their own)."""
    if not isinstance(node, ast.ClassDef):
        return ast.dump(node)
    parts = [*node.decorator_list, *node.bases, *node.keywords]
    parts += [s for s in node.body if not isinstance(s, _Def)]
    return "|".join(ast.dump(p) for p in parts)


def _statements(tree: ast.Module) -> list[ast.stmt]:
    return [s for s in tree.body if not isinstance(s, _Def)]


def _bound_names(tree: ast.Module) -> set[str]:
    names = {s.name for s in tree.body if isinstance(s, _Def)}
    for statement in _statements(tree):
        names |= _binds(statement)
    return names


def _binds(statement: ast.stmt) -> set[str]:
    if isinstance(statement, _Def):
        return {statement.name}
    if isinstance(statement, ast.Import | ast.ImportFrom):
        return {(a.asname or a.name).split(".")[0] for a in statement.names if a.name != "*"}
    targets: list[ast.expr] = []
    if isinstance(statement, ast.Assign):
        targets = statement.targets
    elif isinstance(statement, ast.AnnAssign | ast.AugAssign):
        targets = [statement.target]
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _is_test(name: str, node: _Def) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    if isinstance(node, ast.ClassDef):
        return False
    return leaf.startswith("test")


def _what(name: str, node: _Def) -> str:
    if isinstance(node, ast.ClassDef):
        return "the test class" if node.name.startswith("Test") else "the class"
    return "the test" if _is_test(name, node) else "the helper or fixture"


def _call_name(call: ast.Call, *, full: bool = False) -> str:
    """`assertEqual` for `self.assertEqual(...)`; with `full`, the dotted path when known."""
    parts: list[str] = []
    node: ast.expr = call.func
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    if not parts:
        return ""
    return ".".join(reversed(parts)) if full else parts[0]


def _unparse(dumped: str, scope: ast.AST) -> str:
    """The source of the assertion dumped as `dumped`, found again under `scope`."""
    for child in ast.walk(scope):
        if ast.dump(child) == dumped:
            return _short(child)
    return "?"


def _short(node: ast.AST, limit: int = 120) -> str:
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
