"""Record which tests run which functions: runs INSIDE the sandbox, never imported by the factory.

`testmap.recorder_source()` prepends the lent-coverage finder and `regions.py` to this file
and runs it with the repository's interpreter as `python -c SOURCE OUT JUNIT [PYTEST ARGS]`.
The whole suite runs once under coverage with one context per test (setup, call and
teardown), switched by pytest hooks, not by coverage's `test_function` heuristic, which
charges a test's fixture set-up to the test before it. A fixture wider than a function is
recorded as its own context (`fixture|NAME`): every test using it depends on what it runs.
A teardown that may finalise wider fixtures (the last test of a module or class) is marked
`teardown-wide|`. Lines run outside any test (imports, collection) keep the empty context.

The map is written gzip-compressed as JSON to OUT; pytest's JUnit report goes to JUNIT.
"""

import gzip
import hashlib
import json
import os
import sys
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import coverage
import pytest

if TYPE_CHECKING:  # in the sandbox, `regions.py` is prepended to this source
    from codefactory.verify.regions import body_owner, function_regions

ROOT = os.getcwd()


class ContextSwitcher:
    """pytest hooks that give each test (and each shared fixture) its own coverage context."""

    def __init__(self, cov: Any) -> None:
        self.cov = cov
        self.current = ""
        self.tests: dict[str, dict[str, Any]] = {}

    def switch(self, context: str) -> None:
        self.current = context
        self.cov.switch_context(context)

    def pytest_itemcollected(self, item: Any) -> None:
        path = os.path.relpath(str(item.path), ROOT)
        name = item.nodeid.split("::", 1)[1] if "::" in item.nodeid else ""
        selector = path + ("::" + name.split("[", 1)[0] if name else "")
        self.tests[item.nodeid] = {
            "file": path,
            "selector": selector,
            "fixtures": sorted(getattr(item, "fixturenames", ())),
        }

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_setup(self, item: Any) -> Any:
        self.switch(item.nodeid)
        yield

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: Any) -> Any:
        self.switch(item.nodeid)
        yield

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_teardown(self, item: Any, nextitem: Any) -> Any:
        wide = nextitem is None or nextitem.parent is not item.parent
        self.switch(("teardown-wide|" if wide else "") + item.nodeid)
        yield
        self.switch("")

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef: Any, request: Any) -> Any:
        if fixturedef.scope == "function":
            yield
            return
        outer = self.current
        self.switch("fixture|" + fixturedef.argname)
        yield
        self.switch(outer)


def file_map(data: Any, measured: str) -> tuple[str, dict[str, Any]] | None:
    """(relative path, {sha256, functions: {qualname: [contexts]}, module: [contexts]})."""
    relative = os.path.relpath(measured, ROOT)
    if relative.startswith("..") or not relative.endswith(".py"):
        return None
    with open(measured, "rb") as stream:
        source = stream.read()
    try:
        regions = function_regions(source)
    except SyntaxError:
        return None
    functions: dict[str, set[str]] = defaultdict(set)
    module: set[str] = set()
    for line, contexts in (data.contexts_by_lineno(measured) or {}).items():
        owner = body_owner(regions, line)
        (functions[owner] if owner else module).update(contexts)
    entry = {
        "sha256": hashlib.sha256(source).hexdigest(),
        "functions": {name: sorted(found) for name, found in sorted(functions.items())},
        "module": sorted(module),
    }
    return relative, entry


def main() -> int:
    out, junit, pytest_args = sys.argv[1], sys.argv[2], sys.argv[3:]
    cov = coverage.Coverage(data_file=None, source=[ROOT], omit=[os.path.join(ROOT, ".*")])
    switcher = ContextSwitcher(cov)
    cov.start()
    try:
        code = pytest.main([*pytest_args, f"--junitxml={junit}"], plugins=[switcher])
    finally:
        cov.stop()
    data = cov.get_data()
    files = dict(filter(None, (file_map(data, m) for m in sorted(data.measured_files()))))
    result = {"exit_code": int(code), "tests": switcher.tests, "files": files}
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with gzip.open(out, "wt", encoding="utf-8") as stream:
        json.dump(result, stream, sort_keys=True)
    return 0


sys.exit(main())
