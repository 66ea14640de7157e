"""Run the base commit's tests against the changed code: runs INSIDE the sandbox, never
imported by the factory.

`basetests.run_base_tests` runs it with the repository's interpreter as `python -c SOURCE`
in a check command, the order as JSON on stdin: `{"show": {path: base64 or null},
"after": {path: base64 or null}, "pytest": [args] or null}`. It puts the `show` versions
in place (null: the path is removed), runs pytest in this process, and puts the `after`
versions back whatever happened, so the checks that share the throwaway layer see the
change again. It prints `DONE` last; without it the factory puts `after` back itself.
"""

import base64
import json
import os
import sys
from typing import Any

DONE = "codefactory-base-tests-done"


def put(files: dict[str, Any]) -> None:
    for path, content in files.items():
        if os.path.lexists(path):
            os.remove(path)
        if content is not None:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            with open(path, "wb") as handle:
                handle.write(base64.b64decode(content))


def main() -> None:
    order = json.load(sys.stdin.buffer)
    root = os.getcwd()
    code = 0
    put(order["show"])
    try:
        if order["pytest"] is not None:
            import pytest

            code = int(pytest.main(order["pytest"]))
    finally:
        os.chdir(root)  # a test may have left it elsewhere
        put(order["after"])
    sys.stdout.flush()
    print(DONE, flush=True)
    sys.exit(code)


main()
