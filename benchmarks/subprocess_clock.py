"""Run the `codefactory` console script in this process and record when each child process
it starts runs, so a benchmark can tell the CLI's own time from its tools' (git, ruff,
pytest, bwrap...).

Usage: `python subprocess_clock.py RECORD CLI [ARG...]`. At exit RECORD holds JSON
`{"children": [{"argv": [...], "start": s, "end": s}, ...], "cpu": s}`, times in seconds on
`time.perf_counter()`'s clock, `cpu` the seconds of processor time (user and system, every
thread) this process used, its children's not included. A child's interval runs from just
before `Popen` starts it to when its exit status is collected; every process the CLI starts
goes through `subprocess.Popen` (the sandbox's supervisor, the mirror, the forge,
ssh-keygen).
"""

from __future__ import annotations

import atexit
import json
import resource
import runpy
import subprocess  # noqa: TID251 - it only watches the CLI's own Popen calls
import sys
import time
from pathlib import Path
from typing import Any

children: list[dict[str, Any]] = []
_started: dict[int, dict[str, Any]] = {}
_original_init = subprocess.Popen.__init__
_original_exit = subprocess.Popen._handle_exitstatus  # type: ignore[attr-defined]


def _init(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
    start = time.perf_counter()
    _original_init(self, args, *rest, **kwargs)
    argv = [str(a) for a in args] if isinstance(args, (list, tuple)) else [str(args)]
    record = {"argv": argv, "start": start, "end": None}
    _started[id(self)] = record
    children.append(record)


def _exit(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
    _original_exit(self, *args, **kwargs)
    record = _started.pop(id(self), None)
    if record is not None:
        record["end"] = time.perf_counter()


def main() -> None:
    record_file, cli = Path(sys.argv[1]), sys.argv[2]
    subprocess.Popen.__init__ = _init  # type: ignore[method-assign]
    subprocess.Popen._handle_exitstatus = _exit  # type: ignore[attr-defined]

    def save() -> None:
        now = time.perf_counter()
        finished = [{**c, "end": c["end"] if c["end"] is not None else now} for c in children]
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = usage.ru_utime + usage.ru_stime
        record_file.write_text(json.dumps({"children": finished, "cpu": cpu}))

    atexit.register(save)
    sys.argv = [cli, *sys.argv[3:]]
    runpy.run_path(cli, run_name="__main__")


if __name__ == "__main__":
    main()
