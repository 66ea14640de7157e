"""Benchmark: warm sandbox provisioning against a full copy, and 50 sandboxes at once.

Run with `make bench B=sandbox` (or `.venv/bin/python benchmarks/bench_sandbox.py`). For a
small repository (the demo's sample service) and a generated one of 5,000+ files with 50+
installed packages, it builds the pre-warmed image once, then measures, in the same run:

- warm: provision a workspace over the image and run `true` in it (p50, p95 over 50 runs;
  each workspace is destroyed right after, outside the timing, as runs come and go);
- full copy: copy the same tree and virtualenv to a fresh folder (the work a copy-based
  sandbox does before it can run anything; no command is run, so the ratio is a lower bound);
- 50 sandboxes provisioned and running `true` concurrently: all must succeed; wall time;
- the cost of each hardening step (issue 12) beside the same command without it: dropping
  to the unprivileged host uid (vs. the old mapping of uid 65534 to root), the seccomp
  filter, and the throwaway layer of checks (a CHECK command after an ENGINE one, which
  swaps the layers both ways, vs. two ENGINE commands).

Targets (issues 3 and 12): warm p50 under 100 ms, at least 20x faster than the full copy on
the large repository, with every hardening step on. The package cache persists in `--cache`
so a second run downloads nothing.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codefactory.demo import create_sample_repository  # noqa: E402
from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace  # noqa: E402
from codefactory.sandbox.images import ImageCache  # noqa: E402
from codefactory.sandbox.port import Phase  # noqa: E402

# Small, mostly pure-Python packages; with their dependencies, well over 50 installed.
PACKAGES = """six idna attrs packaging pyparsing certifi urllib3 requests charset-normalizer click
itsdangerous jinja2 markupsafe werkzeug flask blinker python-dateutil pytz tzdata toml tomli
tomli-w decorator wrapt cachetools chardet colorama docutils pygments iniconfig pluggy pytest
more-itertools zipp importlib-metadata typing-extensions mdurl markdown-it-py rich tabulate
termcolor tqdm filelock platformdirs distlib jmespath sortedcontainers toolz python-slugify
text-unidecode humanize inflection ply pycparser webencodings soupsieve beautifulsoup4 isodate
wcwidth prettytable tenacity backoff""".split()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(action: Callable[[], object], repeat: int) -> list[float]:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=b@e", *args],
        check=True,
        capture_output=True,
    )


def large_repository(path: Path, files: int = 5200) -> Path:
    """A generated repository of `files` Python modules in 100 packages, and 60+ requirements."""
    for index in range(files):
        package = path / "src" / f"pkg{index % 100:03d}"
        package.mkdir(parents=True, exist_ok=True)
        (package / f"mod{index:05d}.py").write_text(f"VALUE_{index} = {index}\n" * 20)
    (path / "requirements.txt").write_text("\n".join(PACKAGES) + "\n")
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "generated")
    return path


def measure(label: str, sandbox: BubblewrapSandbox, repo: Path, copies: int) -> None:
    counter = iter(range(10**6))
    built_at = time.perf_counter()
    first = sandbox.provision(repo=repo, commit="HEAD", run_id="warmup")
    build_s = time.perf_counter() - built_at
    assert first.lease is not None
    tree, env = first.lease.tree, first.lease.env
    installed = len(list(env.glob("lib/python*/site-packages/*.dist-info")))
    tree_files = sum(1 for p in tree.rglob("*") if p.is_file())
    first.destroy()

    destroy_ms: list[float] = []

    def warm() -> None:
        workspace = sandbox.provision(repo=repo, commit="HEAD", run_id=f"w{next(counter)}")
        result = workspace.exec(["true"], phase=Phase.ENGINE)
        assert result.ok, result.stderr
        done.append(workspace)

    def warm_then_destroy() -> None:
        warm_ms.extend(timed(warm, 1))
        destroy_ms.extend(timed(lambda: done.pop().destroy(), 1))

    done: list[BubblewrapWorkspace] = []
    warm_ms: list[float] = []
    timed(warm_then_destroy, 50)

    scratch = Path(tempfile.mkdtemp(prefix="bench-copy-", dir=sandbox.work_root.parent))

    def full_copy() -> None:
        target = scratch / f"c{next(counter)}"
        shutil.copytree(tree, target / "tree", symlinks=True)
        shutil.copytree(env, target / "env", symlinks=True)

    copy_ms = timed(full_copy, copies)
    shutil.rmtree(scratch)
    p50, p95, copy_p50 = (
        percentile(warm_ms, 0.5),
        percentile(warm_ms, 0.95),
        percentile(copy_ms, 0.5),
    )
    print(f"\n{label}: {tree_files} files, {installed} installed packages "
          f"(image built once in {build_s:.1f} s)")  # fmt: skip
    print(f"  warm provision + `true`   p50 {p50:8.1f} ms   p95 {p95:8.1f} ms   (50 runs)")
    print(f"  destroy                   p50 {percentile(destroy_ms, 0.5):8.1f} ms")
    print(f"  full copy (tree + venv)   p50 {copy_p50:8.1f} ms   p95 "
          f"{percentile(copy_ms, 0.95):8.1f} ms   ({copies} runs)")  # fmt: skip
    print(f"  ratio (copy p50 / warm p50): {copy_p50 / p50:6.1f}x")


def concurrent(sandbox: BubblewrapSandbox, repo: Path, count: int = 50) -> None:
    def one(index: int) -> bool:
        workspace = sandbox.provision(repo=repo, commit="HEAD", run_id=f"par{index}")
        try:
            return workspace.exec(["true"], phase=Phase.ENGINE, timeout_s=120).ok
        finally:
            workspace.destroy()

    started = time.perf_counter()
    with ThreadPoolExecutor(count) as pool:
        results = list(pool.map(one, range(count)))
    wall = time.perf_counter() - started
    print(f"\n{count} sandboxes at once (large repository): {sum(results)}/{count} succeeded, "
          f"total wall time {wall * 1000:.0f} ms")  # fmt: skip


def hardening(root: Path, repo: Path, cache: Path, repeat: int = 60) -> None:
    """p50 of one `true` with and without each hardening step, in the same run."""

    def p50_of(sandbox: BubblewrapSandbox, phases: tuple[Phase, ...]) -> float:
        workspace = sandbox.provision(repo=repo, commit="HEAD", run_id=f"h{len(phases)}")
        try:

            def commands() -> None:
                for phase in phases:
                    assert workspace.exec(["true"], phase=phase).ok

            return percentile(timed(commands, repeat), 0.5)
        finally:
            workspace.destroy()
            sandbox.close()

    def sandbox(**options: bool) -> BubblewrapSandbox:
        return BubblewrapSandbox(root / "hardening", cache, **options)

    engine = (Phase.ENGINE,)
    old = p50_of(sandbox(seccomp=False, map_to_host_root=True), engine)
    host_ids = p50_of(sandbox(seccomp=False), engine)
    seccomp = p50_of(sandbox(map_to_host_root=True), engine)
    hardened = p50_of(sandbox(), engine)
    two_engine = p50_of(sandbox(), (Phase.ENGINE, Phase.ENGINE))
    swapping = p50_of(sandbox(), (Phase.ENGINE, Phase.CHECK))
    print("\nhardening steps, p50 of one sandboxed `true` (same run, small repository):")
    print(f"  before hardening (uid 65534 -> host root, no seccomp)   {old:7.2f} ms")
    print(f"  + unprivileged host uid (setpriv)                       {host_ids:7.2f} ms"
          f"   ({host_ids - old:+.2f} ms)")  # fmt: skip
    print(f"  + seccomp filter                                        {seccomp:7.2f} ms"
          f"   ({seccomp - old:+.2f} ms)")  # fmt: skip
    print(f"  both (the default)                                      {hardened:7.2f} ms"
          f"   ({hardened - old:+.2f} ms)")  # fmt: skip
    print(
        f"  engine then check (layers swapped twice) vs two engine  {swapping:7.2f} ms"
        f" vs {two_engine:.2f} ms   ({swapping - two_engine:+.2f} ms per round trip)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/codefactory-bench-cache"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as folder:
        root = Path(folder)
        images = ImageCache(root / "images", python="/usr/bin/python3")
        sandbox = BubblewrapSandbox(root / "work", args.cache, images=images)
        small = create_sample_repository(root / "small")
        large = large_repository(root / "large")
        measure("small repository (demo sample service)", sandbox, small, copies=50)
        measure("large repository", sandbox, large, copies=20)
        concurrent(sandbox, large)
        sandbox.close()
        hardening(root, small, args.cache)


if __name__ == "__main__":
    main()
