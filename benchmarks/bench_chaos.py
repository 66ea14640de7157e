"""The chaos run of issue 15, printing its figures: `codefactory serve --workers 0` and three
`codefactory worker` processes on PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379), 200
signed deliveries fired while workers are SIGKILLed and restarted and broker connections are
cut (tests/chaos.py; the same scenario tests/acceptance/test_celery_chaos.py asserts on).

Run with `make bench B=chaos` (or `python benchmarks/bench_chaos.py [--deliveries N]
[--workers N] [--kills N] [--cuts N]`). Beside the chaos figures it prints the baseline of
the same deliveries on the same cluster with no kill and no cut, measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.acceptance.test_celery_chaos import repositories  # noqa: E402
from tests.chaos import run_chaos  # noqa: E402
from tests.directory_helpers import directory_env, standard_directory  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=200)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--cuts", type=int, default=2)
    parser.add_argument("--decide-at-intake", action="store_true",
                        help="serve decides each delivery (default: workers decide them)")
    args = parser.parse_args()
    for name, kills, cuts in (("baseline", 0, 0), ("chaos", args.kills, args.cuts)):
        with tempfile.TemporaryDirectory() as folder:
            root = Path(folder)
            lint, clean = repositories(root)
            env = {k: v for k, v in os.environ.items() if not k.startswith("CODEFACTORY_")}
            env.update(directory_env(standard_directory(root / "people")))
            env.update(CI="true", CODEFACTORY_DATA_DIR=str(root / "data"))
            env["CODEFACTORY_VERIFY__ADVISORIES_MAX_AGE_DAYS"] = "none"
            figures = run_chaos(
                root, base_env=env, lint_repo=lint, clean_repo=clean,
                deliveries=args.deliveries, workers=args.workers, kills=kills, cuts=cuts,
                decide_at_intake=args.decide_at_intake,
            )  # fmt: skip
            print(f"== {name}")
            print("\n".join(figures.lines()))
            if figures.problems:
                raise SystemExit(f"{name}: {len(figures.problems)} problems")


if __name__ == "__main__":
    main()
