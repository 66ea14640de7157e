"""A worker process that drives one run and dies by SIGKILL at a chosen point: a worker
killed mid-run, for the takeover tests (tests/integration/test_run_takeover.py).

    python -m tests.crash_worker <run id> <point>

`<point>` is a run state (the process dies right after the transition is committed), or
`package-written` (after the change package is built, before it is recorded). Settings come
from the environment (`CODEFACTORY_DATA_DIR`, `CODEFACTORY_IDENTITY__DIRECTORY_FILE`,
`CODEFACTORY_DISPATCH__HEARTBEAT_S`), as a real `codefactory worker` reads them.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from codefactory.config import Settings
from codefactory.dispatch.service import build_execution
from codefactory.domain import RunState
from codefactory.factory import build_factory


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class DyingPackager:
    """The factory's package builder, dying once the package is written."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def build(self, contents: Any) -> Any:
        self.inner.build(contents)
        die()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def main(run_id: str, point: str) -> int:
    def observer(seen: str, state: RunState, _reason: str) -> None:
        if seen == run_id and state.value == point:
            die()

    factory = build_factory(Settings(), observer=observer)
    if point == "package-written":
        factory.loop.packager = DyingPackager(factory.loop.packager)
    execution = build_execution(factory, role="crashing")
    execution.heartbeats.start()
    run = execution.driver.drive(run_id)
    print(f"not killed: run {run.state.value if run else 'held'}", file=sys.stderr)
    return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
