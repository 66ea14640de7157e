"""The agent's tools: plain functions over the run's sandbox workspace.

Each takes the run context (its `deps` are `AgentDeps`) and the model's arguments, acts only
through `Workspace` (files and commands inside the sandbox, ENGINE phase, no network), and
reports a problem the model can correct by raising `ToolFailed`, whose message the model sees.
Policy, audit and counting are not here: `gate.GatedToolset` wraps these tools.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pydantic_ai import RunContext, ToolFailed
from pydantic_ai.toolsets import FunctionToolset

from codefactory.domain import ExecResult
from codefactory.engines.agent.reading import file_size, read_head
from codefactory.engines.patches import (
    PathNotAllowed,
    UnreadablePatch,
    normal_path,
    numstat_paths,
    patch_paths,
)
from codefactory.sandbox.port import Phase, Workspace

RG = "/usr/bin/rg"


@dataclass(frozen=True, kw_only=True)
class ToolLimits:
    """How much a tool may take and show: seconds for `run`, characters for output."""

    run_timeout_s: float = 120.0
    output_chars: int = 16_000
    """`run` and `search` output; longer output keeps its head and tail with a note."""
    read_chars: int = 100_000
    list_entries: int = 1_000
    edit_bytes: int = 4_000_000
    """The largest file `edit_file` reads whole into the harness."""


@dataclass(kw_only=True)
class AgentDeps:
    """What the tools act on in one round: the workspace, and what `finish` recorded."""

    workspace: Workspace
    limits: ToolLimits = field(default_factory=ToolLimits)
    summary: str | None = None
    """Set by `finish`; the engine stops the run once it is set."""


Ctx = RunContext[AgentDeps]


def workspace_path(path: str, *, allow_root: bool = False) -> str:
    """`path` normalised relative to the workspace root (`a/./b` → `a/b`), the same spelling
    the tool gate asked policy about (`normal_path`).

    Raises `ToolFailed` for an empty, absolute or `..` path: the model sees why."""
    try:
        return normal_path(path, allow_root=allow_root)
    except PathNotAllowed as err:
        raise ToolFailed(str(err)) from None


def read_file(ctx: Ctx, path: str) -> str:
    """Read a text file of the workspace.

    Args:
        path: the file, relative to the workspace root (e.g. `src/app.py`).
    """
    relative = workspace_path(path)
    limit = ctx.deps.limits.read_chars
    head = read_head(ctx.deps.workspace, relative, limit)  # never the whole of a huge file
    if head is None:
        raise ToolFailed(f"no such file: {relative} (list_files shows what exists)")
    if b"\0" in head.content[:8192]:
        raise ToolFailed(f"{relative} is a binary file of {head.size} bytes")
    text = head.content.decode("utf-8", "replace")
    if head.size > len(head.content) or len(text) > limit:
        shown = text[:limit]
        return (
            f"{shown}\n[truncated: showing {shown.count(chr(10))} lines, "
            f"{len(shown.encode())} of {head.size} bytes]"
        )
    return text


def list_files(ctx: Ctx, path: str = ".") -> str:
    """List the files under a folder of the workspace, recursively, one path a line
    (files the repository ignores are left out).

    Args:
        path: the folder, relative to the workspace root; `.` for the whole workspace.
    """
    relative = workspace_path(path, allow_root=True)
    result = _exec(
        ctx, [RG, "--files", "--hidden", "--no-require-git", "--glob", "!.git", "--", relative]
    )
    if result.exit_code not in (0, 1) or result.limit_hit:
        raise ToolFailed(f"cannot list {relative}: {_error_text(result)}")
    names = sorted(_strip_dot(line) for line in result.stdout.splitlines() if line)
    if not names:
        return f"no files under {relative}"
    limit = ctx.deps.limits.list_entries
    if len(names) > limit:
        return "\n".join(names[:limit]) + f"\n[truncated: {limit} of {len(names)} files]"
    return "\n".join(names)


def search(ctx: Ctx, pattern: str, path: str = ".") -> str:
    """Search file contents with a regular expression (ripgrep syntax); answers
    `path:line:text` lines.

    Args:
        pattern: the regular expression, e.g. `def parse_\\w+`.
        path: a file or folder relative to the workspace root; `.` for everything.
    """
    if not pattern:
        raise ToolFailed("pattern is empty: give a regular expression to search for")
    relative = workspace_path(path, allow_root=True)
    command = [
        RG,
        "--line-number",
        "--no-heading",
        "--color",
        "never",
        "--hidden",
        "--no-require-git",
    ]
    command += ["--glob", "!.git", "--max-columns", "300", "--regexp", pattern, "--", relative]
    result = _exec(ctx, command)
    if result.exit_code == 1 and not result.limit_hit:
        return f"no matches for {pattern!r} under {relative}"
    if result.exit_code != 0 and not result.limit_hit:
        raise ToolFailed(f"search failed: {_error_text(result)}")
    lines = [_strip_dot(line) for line in result.stdout.splitlines()]
    return cap_output("\n".join(lines), ctx.deps.limits.output_chars)


def edit_file(ctx: Ctx, path: str, old: str, new: str) -> str:
    """Replace one exact piece of text in a file; `old` must occur exactly once (include
    enough surrounding lines). With `old` empty, create a file that does not exist yet.

    Args:
        path: the file, relative to the workspace root.
        old: the exact text to replace, whitespace included.
        new: the text to put in its place.
    """
    relative = workspace_path(path)
    workspace = ctx.deps.workspace
    size = file_size(workspace, relative)
    if size is not None and size > ctx.deps.limits.edit_bytes:
        raise ToolFailed(
            f"{relative} has {size} bytes, more than edit_file takes "
            f"({ctx.deps.limits.edit_bytes}); use apply_patch or run"
        )
    content = workspace.read_file(relative, phase=Phase.ENGINE) if size is not None else None
    if not old:
        if content is not None:
            raise ToolFailed(f"{relative} exists: give the text to replace in `old`")
        workspace.write_file(relative, new.encode())
        return f"created {relative} ({new.count(chr(10))} lines)"
    if content is None:
        raise ToolFailed(f"no such file: {relative}")
    text = content.decode("utf-8", "replace")
    count = text.count(old)
    if count != 1:
        raise ToolFailed(_occurrences(relative, count))
    workspace.write_file(relative, text.replace(old, new, 1).encode())
    return f"edited {relative}: replaced {old.count(chr(10)) + 1} lines"


def apply_patch(ctx: Ctx, patch: str) -> str:
    """Apply a unified diff (`--- a/path`, `+++ b/path`, `@@` hunks) to the workspace; all
    of it applies or nothing does.

    Args:
        patch: the unified diff; paths relative to the workspace root, with `a/` and `b/`.
    """
    if "@@" not in patch and "GIT binary patch" not in patch:
        raise ToolFailed("not a unified diff: no '@@' hunk header found")
    try:
        named = patch_paths(patch)
    except UnreadablePatch as err:
        raise ToolFailed(str(err)) from None
    for target in named:
        workspace_path(target)
    body = patch if patch.endswith("\n") else patch + "\n"
    # git's own reading of the patch must name no path its headers (which policy saw) do not
    check = _exec(ctx, ["git", "apply", "--numstat", "-z", "-"], stdin=body.encode())
    if not check.ok:
        raise ToolFailed(f"the patch cannot be read, nothing was changed:\n{_error_text(check)}")
    touched = numstat_paths(check.stdout)
    if unnamed := sorted(set(touched) - set(named)):
        raise ToolFailed(f"the patch touches paths its headers do not name: {unnamed}")
    # git apply is atomic (every hunk or none) and runs without a repository, as patch(1) would
    command = ["git", "apply", "--verbose", "--whitespace=nowarn", "--recount", "-"]
    result = _exec(ctx, command, stdin=body.encode())
    if not result.ok:
        raise ToolFailed(f"the patch did not apply, nothing was changed:\n{_error_text(result)}")
    applied = [line for line in result.stderr.splitlines() if line.startswith("Applied patch")]
    return "\n".join(applied) or "applied"


def run(ctx: Ctx, command: str) -> str:
    """Run a shell command line with `sh -c` in the workspace root, without network;
    answers its exit code and output.

    Args:
        command: the command line, e.g. `python -m pytest -q tests/test_app.py`.
    """
    if not command.strip():
        raise ToolFailed("command is empty")
    limits = ctx.deps.limits
    result = _exec(ctx, ["sh", "-c", command], timeout_s=limits.run_timeout_s)
    if result.timed_out:
        status = f"timed out after {limits.run_timeout_s:g} s and was killed"
    elif result.limit_hit:
        status = f"killed: the sandbox's {result.limit_hit} limit was hit"
    else:
        status = f"exit code {result.exit_code}"
    output = result.stdout + (f"\n[stderr]\n{result.stderr}" if result.stderr else "")
    return f"{status}\n{cap_output(output, limits.output_chars)}"


def finish(ctx: Ctx, summary: str) -> str:
    """Say you are done: the change is made. Ends your work; call no tool after it.

    Args:
        summary: what you changed and why, for the reviewer (a few sentences).
    """
    if not summary.strip():
        raise ToolFailed("summary is empty: say what you changed and why")
    ctx.deps.summary = summary.strip()
    return "finished"


TOOLS: dict[str, Callable[..., str]] = {
    "read_file": read_file,
    "list_files": list_files,
    "search": search,
    "edit_file": edit_file,
    "apply_patch": apply_patch,
    "run": run,
    "finish": finish,
}
"""Tool name → function; the names and arguments are the engine's public interface."""


def build_toolset(allowed: Sequence[str] = ()) -> FunctionToolset[AgentDeps]:
    """The tools named in `allowed` (all of them when empty), run one at a time.

    Raises `ValueError` for a name that is not a tool here, or an allow-list without
    `finish` (the agent could never end its work)."""
    names = list(allowed) or list(TOOLS)
    unknown = sorted(set(names) - set(TOOLS))
    if unknown:
        raise ValueError(f"the allow-list names tools the agent does not have: {unknown}")
    if "finish" not in names:
        raise ValueError("the allow-list leaves out finish: the agent could never end")
    chosen = [TOOLS[name] for name in TOOLS if name in names]
    # one at a time: the tools share one workspace, and a later call may read an earlier edit
    return FunctionToolset(chosen, sequential=True, max_retries=3)


def cap_output(text: str, limit: int) -> str:
    """`text` if it fits in `limit` characters, else its head and tail with a note between."""
    if len(text) <= limit:
        return text
    half = limit // 2
    dropped = len(text) - 2 * half
    return f"{text[:half]}\n[... {dropped} characters cut ...]\n{text[-half:]}"


def _exec(
    ctx: Ctx, command: list[str], *, timeout_s: float = 60.0, stdin: bytes | None = None
) -> ExecResult:
    return ctx.deps.workspace.exec(command, phase=Phase.ENGINE, timeout_s=timeout_s, stdin=stdin)


def _occurrences(path: str, count: int) -> str:
    if count == 0:
        return (
            f"`old` does not occur in {path}: copy it exactly from read_file, "
            "whitespace and indentation included"
        )
    return (
        f"`old` occurs {count} times in {path}: include more surrounding lines so that "
        "it occurs exactly once"
    )


def _error_text(result: ExecResult) -> str:
    text = (result.stderr or result.stdout).strip()
    if result.limit_hit:
        text = f"the sandbox's {result.limit_hit} limit was hit. {text}"
    return text or f"exit code {result.exit_code}"


def _strip_dot(line: str) -> str:
    return line[2:] if line.startswith("./") else line
