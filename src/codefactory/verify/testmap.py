"""The test map of a base commit: which tests (and shared fixtures) ran which functions.

Recorded once per base commit, inside the sandbox, before the engine touches the workspace,
by running the whole suite under coverage (`scripts/record_test_map.py`); cached in the store
per commit. The same run's JUnit report is the base commit's test baseline.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from codefactory.domain import ExecResult
from codefactory.sandbox.layout import SH
from codefactory.sandbox.port import Phase, Workspace
from codefactory.verify.errors import TestMapInvalid
from codefactory.verify.lent import COVERAGE_FINDER

RECORDER_VERSION = "1"
MAP_PATH = ".codefactory/testmap.json.gz"
BASE_JUNIT_PATH = ".codefactory/base-junit.xml"


@dataclass(frozen=True, kw_only=True)
class TestInfo:
    """One collected test: its file, how to run it (`path::name`), the fixtures it uses."""

    __test__ = False  # not a pytest test class

    file: str
    selector: str
    fixtures: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class FileMap:
    """One measured file: its digest at the base, and the contexts that ran each function."""

    sha256: str
    functions: Mapping[str, tuple[str, ...]]
    module: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class TestMap:
    """Tests by node id and measured files by path, of one base commit."""

    __test__ = False

    commit: str
    tests: Mapping[str, TestInfo]
    files: Mapping[str, FileMap]

    def to_text(self) -> str:
        """Compressed JSON, as the cache stores it."""
        body = {
            "commit": self.commit,
            "tests": {k: _test_dict(v) for k, v in self.tests.items()},
            "files": {k: _file_dict(v) for k, v in self.files.items()},
        }
        raw = json.dumps(body, sort_keys=True).encode()
        return base64.b64encode(gzip.compress(raw, mtime=0)).decode("ascii")

    @classmethod
    def from_text(cls, text: str) -> TestMap:
        try:
            body = json.loads(gzip.decompress(base64.b64decode(text, validate=True)))
        except (binascii.Error, OSError, EOFError, ValueError) as exc:
            raise TestMapInvalid(f"the cached map is corrupt ({exc})") from exc
        return cls.from_recorded(str(body.get("commit", "")), body)

    @classmethod
    def from_recorded(cls, commit: str, body: Any) -> TestMap:
        """The map from the recorder's JSON; TestMapInvalid when it is not that shape."""
        try:
            tests = {
                str(k): TestInfo(
                    file=str(v["file"]),
                    selector=str(v["selector"]),
                    fixtures=tuple(str(f) for f in v["fixtures"]),
                )
                for k, v in body["tests"].items()
            }
            files = {
                str(k): FileMap(
                    sha256=str(v["sha256"]),
                    functions={str(q): tuple(map(str, c)) for q, c in v["functions"].items()},
                    module=tuple(str(c) for c in v["module"]),
                )
                for k, v in body["files"].items()
            }
        except (TypeError, KeyError, AttributeError) as exc:
            raise TestMapInvalid(f"the recorded map is malformed ({exc!r})") from exc
        return cls(commit=commit, tests=tests, files=files)


def recorder_source() -> str:
    """The recorder as one `python -c` program: the coverage finder, regions.py, the script."""
    package = files("codefactory.verify")
    regions = package.joinpath("regions.py").read_text(encoding="utf-8")
    script = package.joinpath("scripts", "record_test_map.py").read_text(encoding="utf-8")
    return COVERAGE_FINDER + regions + "\n" + script


def record_test_map(
    workspace: Workspace, *, pytest_args: list[str], timeout_s: float
) -> tuple[TestMap, str]:
    """Run the whole suite under coverage at the base; returns the map and the JUnit report."""
    program = ["python", "-c", recorder_source(), MAP_PATH, BASE_JUNIT_PATH, *pytest_args]
    script = f'/usr/bin/rm -f {MAP_PATH} {BASE_JUNIT_PATH} && exec "$@"'
    command = [SH, "-c", script, "sh", *program]
    result = workspace.exec(command, phase=Phase.CHECK, timeout_s=timeout_s)
    if result.timed_out:
        raise TestMapInvalid(f"the base commit's suite did not finish within {timeout_s:g} s")
    raw = workspace.read_file(MAP_PATH, phase=Phase.CHECK)
    if raw is None:
        raise TestMapInvalid(
            f"the recorder wrote no map (exit {result.exit_code}): {_tail(result)}"
        )
    try:
        body = json.loads(gzip.decompress(raw))
    except (OSError, EOFError, ValueError) as exc:
        raise TestMapInvalid(f"the recorded map could not be read back ({exc})") from exc
    junit = workspace.read_file(BASE_JUNIT_PATH, phase=Phase.CHECK)
    return TestMap.from_recorded(workspace.base_commit, body), (junit or b"").decode(
        "utf-8", "replace"
    )


def _test_dict(info: TestInfo) -> dict[str, Any]:
    return {"file": info.file, "selector": info.selector, "fixtures": list(info.fixtures)}


def _file_dict(entry: FileMap) -> dict[str, Any]:
    return {
        "sha256": entry.sha256,
        "functions": {q: list(c) for q, c in entry.functions.items()},
        "module": list(entry.module),
    }


def _tail(result: ExecResult) -> str:
    return (result.stderr.strip() or result.stdout.strip() or "no output")[-800:]
