"""Where each function of a Python file lives: the unit test selection maps tests to.

Standard library only, and no `from __future__` import: the test-map recorder runs this same
source inside the sandbox with the repository's interpreter, so the recorder and the
selection attribute lines to functions identically.

A function's header is its `def` line through the line before its body (name, parameters,
defaults); its body runs only when it is called. Decorators, class bodies and module-level
statements run at import and belong to no function.
"""

import ast
from dataclasses import dataclass


@dataclass(frozen=True)
class Region:
    """One function: its qualified name (`C.method`, `outer.<locals>.inner`) and its lines."""

    qualname: str
    header_start: int
    body_start: int
    end: int
    is_function: bool = True


def function_regions(source: bytes) -> list[Region]:
    """Every function and class of `source`, outermost first; SyntaxError when unparseable."""
    regions: list[Region] = []
    _visit(ast.parse(source), "", regions)
    return regions


def _visit(node: ast.AST, prefix: str, regions: list[Region]) -> None:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            qualname = prefix + child.name
            regions.append(
                Region(qualname, child.lineno, child.body[0].lineno, child.end_lineno or 0)
            )
            _visit(child, qualname + ".<locals>.", regions)
        elif isinstance(child, ast.ClassDef):
            qualname = prefix + child.name
            body = child.body[0].lineno
            regions.append(Region(qualname, child.lineno, body, child.end_lineno or 0, False))
            _visit(child, qualname + ".", regions)
        else:
            _visit(child, prefix, regions)


def body_owner(regions: list[Region], line: int) -> str | None:
    """The innermost function whose body holds `line`; None for import-time lines."""
    owner = None
    for region in regions:
        if region.is_function and region.body_start <= line <= region.end:
            owner = region.qualname  # regions are outermost first
        elif not region.is_function and region.header_start <= line <= region.end:
            owner = None if owner is None else _owner_of_class(regions, region, owner)
    return owner


def _owner_of_class(regions: list[Region], cls: Region, owner: str) -> str | None:
    """A class nested in a function runs with that function; at module level, at import."""
    return owner if cls.qualname.startswith(owner + ".<locals>.") else None


def enclosing(regions: list[Region], line: int) -> list[Region]:
    """Every region (function or class, header included) holding `line`, outermost first."""
    return [r for r in regions if r.header_start <= line <= r.end]
