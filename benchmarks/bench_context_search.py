"""Benchmark: searching the repository as a context source, beside the direct tools.

Run with `make bench B=context_search` (or `.venv/bin/python benchmarks/bench_context_search.py`).
It generates a deterministic repository of 100,000 lines (400 Python modules of 250 lines),
then measures, in the same run (p50 and p95 over `--repeat` queries, cycling through a few
queries that match a handful of files, many files, and none):

- `RepositoryConnector.search` (ripgrep inside a bubblewrap workspace, JSON parsed, items
  built) beside `rg` run directly on the host over the same tree with the same flags;
- `RepositoryIndex.search` beside the same FTS5 query issued directly with `sqlite3` on the
  same index file;
- `RepositoryIndex.update`: the whole repository, then an incremental update to a commit
  changing 3 files, and an update to the same commit (nothing to do);
- `RepositoryConnector.symbols` and `fetch` (for scale; no baseline).

The sandboxed figures include starting the sandbox for each command (`true` alone is printed
as the floor).
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from codefactory.context.connectors.repo_index import RepositoryIndex  # noqa: E402
from codefactory.context.connectors.repository import RG, RepositoryConnector  # noqa: E402
from codefactory.sandbox.bubblewrap import BubblewrapSandbox  # noqa: E402
from codefactory.sandbox.port import Phase  # noqa: E402

WORDS = """account balance ledger invoice settle payment customer transfer currency amount
refund charge report audit journal posting entry batch schedule retry queue cache session
token limit window result error status total region branch""".split()
QUERIES = ["settle_invoice_17", "ledger", "def compute_total", "no_such_identifier_here"]
INDEX_QUERIES = ["settle_invoice_17", "ledger posting", "compute_total amount", "nothing_here"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(actions: list[Callable[[], object]], repeat: int) -> list[float]:
    timings = []
    for index in range(repeat):
        started = time.perf_counter()
        actions[index % len(actions)]()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=bench", "-c", "user.email=b@e", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def module_text(rng: random.Random, number: int, lines: int) -> str:
    out = [f'"""Module {number}: {" ".join(rng.sample(WORDS, 6))}."""', ""]
    while len(out) < lines - 4:
        name = f"{rng.choice(WORDS)}_{rng.choice(WORDS)}_{rng.randrange(100)}"
        out += [
            f"def {name}({rng.choice(WORDS)}, {rng.choice(WORDS)}):",
            f'    """Return the {rng.choice(WORDS)} of the {rng.choice(WORDS)}."""',
            f"    value = {rng.choice(WORDS)} * {rng.randrange(1000)} + {rng.choice(WORDS)}",
            f"    return settle_invoice_{rng.randrange(400)}(value)",
            "",
        ]
    out += ["", "def compute_total(items):", "    return sum(items)", ""]
    return "\n".join(out[:lines]) + "\n"


def generate(path: Path, files: int = 400, lines: int = 250) -> Path:
    """A repository of `files` modules of `lines` lines each, the same on every run."""
    rng = random.Random(13)
    for number in range(files):
        module = path / "src" / f"pkg{number % 20:02d}" / f"mod{number:03d}.py"
        module.parent.mkdir(parents=True, exist_ok=True)
        module.write_text(module_text(rng, number, lines))
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "generated")
    return path


def change_three(repo: Path) -> str:
    for number in (1, 2, 3):
        module = repo / "src" / f"pkg{number:02d}" / f"mod{number:03d}.py"
        module.write_text(module.read_text() + f"\nCHANGED_{number} = True\n")
    git(repo, "commit", "-q", "-am", "three files")
    return git(repo, "rev-parse", "HEAD")


def line(label: str, values: list[float], baseline: tuple[str, list[float]] | None) -> None:
    p50, p95 = percentile(values, 0.5), percentile(values, 0.95)
    text = f"  {label:<38} p50 {p50:8.2f} ms   p95 {p95:8.2f} ms"
    if baseline is not None:
        base_label, base = baseline
        ratio = p50 / percentile(base, 0.5)
        text += f"\n  {base_label:<38} p50 {percentile(base, 0.5):8.2f} ms   p95 "
        text += f"{percentile(base, 0.95):8.2f} ms   (ratio {ratio:.1f}x)"
    print(text)


def host_rg(tree: Path, query: str) -> None:
    command = [RG, "--json", "--fixed-strings", "--ignore-case", "--sort", "path"]
    command += ["--max-count", "5", "--max-columns", "300", "--no-config", "--no-follow"]
    command += ["--hidden", "--no-require-git", "--glob", "!.git", "--max-filesize", "1M"]
    subprocess.run([*command, "--regexp", query, "--", "."], cwd=tree, capture_output=True)


def direct_fts(path: Path) -> Callable[[str], list[object]]:
    connection = sqlite3.connect(path)
    sql = (
        "SELECT path, snippet(docs, 1, '', '', ' … ', 64), bm25(docs) FROM docs "
        "WHERE docs MATCH ? ORDER BY bm25(docs) LIMIT 10"
    )

    def query(text: str) -> list[object]:
        expression = " ".join('"' + word.replace('"', '""') + '"' for word in text.split())
        return connection.execute(sql, (expression,)).fetchall()

    return query


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-context-") as folder:
        root = Path(folder)
        repo = generate(root / "repo")
        lines = sum(p.read_text().count("\n") for p in (repo / "src").rglob("*.py"))
        size = sum(p.stat().st_size for p in (repo / "src").rglob("*.py"))
        print(f"repository: 400 files, {lines} lines, {size // 1024} KiB")

        index = RepositoryIndex(root / "data" / "index.sqlite")
        built = index.update(repo / ".git", "HEAD")
        base = built.commit
        print("\nindex (SQLite FTS5 trigram, from git objects):")
        print(f"  whole repository                       {built.duration_s * 1000:8.1f} ms"
              f"   ({built.indexed} files indexed)")  # fmt: skip
        changed = index.update(repo / ".git", change_three(repo))
        print(f"  incremental, a commit changing 3 files {changed.duration_s * 1000:8.1f} ms"
              f"   ({changed.indexed} files re-indexed, {changed.unchanged} kept)")  # fmt: skip
        same = index.update(repo / ".git", "HEAD")
        print(f"  same commit again (nothing to do)      {same.duration_s * 1000:8.1f} ms")
        print(f"  index file                             {index.path.stat().st_size // 1024} KiB")

        sandbox = BubblewrapSandbox(root / "work", root / "cache")
        workspace = sandbox.provision(repo=repo, commit=base, run_id="bench-context")
        try:
            connector = RepositoryConnector(
                workspace, repository="bench", data_class="internal", index=None,
                max_item_chars=20_000,
            )  # fmt: skip
            assert connector.search("settle_invoice_17"), "the generated text must match"
            floor = timed([lambda: workspace.exec(["true"], phase=Phase.ENGINE)], args.repeat)
            sandboxed = timed([lambda q=q: connector.search(q) for q in QUERIES], args.repeat)
            direct = timed([lambda q=q: host_rg(repo, q) for q in QUERIES], args.repeat)
            print(f"\n(a) text search, {len(QUERIES)} queries cycled, {args.repeat} runs:")
            line("RepositoryConnector.search (sandbox)", sandboxed, ("rg on the host", direct))
            line("sandboxed `true` (the floor)", floor, None)

            fts = direct_fts(index.path)
            ours = timed([lambda q=q: index.search(q) for q in INDEX_QUERIES], args.repeat)
            raw = timed([lambda q=q: fts(q) for q in INDEX_QUERIES], args.repeat)
            print(f"\n(b) index search, {len(INDEX_QUERIES)} queries cycled, {args.repeat} runs:")
            line("RepositoryIndex.search", ours, ("sqlite3 FTS5 query, same file", raw))

            symbols = timed([lambda: connector.symbols("compute_total")], 20)
            fetches = timed([lambda: connector.fetch("src/pkg07/mod007.py:100-160")], 20)
            print("\nother reads through the sandbox (20 runs):")
            line("symbols('compute_total') (rg | ctags)", symbols, None)
            line("fetch(path:100-160)", fetches, None)
        finally:
            workspace.destroy()
            sandbox.close()
            index.close()


if __name__ == "__main__":
    main()
