"""Package re-exports loaded on first use (PEP 562), so `import codefactory.x.settings` does
not import every module of `codefactory.x`: the CLI's start-up pays only for what a
command uses."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, namespace: dict[str, Any], exports: Mapping[str, str]
) -> Callable[[str], Any]:
    """A module `__getattr__` for `package` that imports `name` from `exports[name]` (a
    module path) on first access and keeps it in `namespace` (the package's globals).

    Raises AttributeError for a name that is not exported, as a module would."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
