"""The run's repository as a context source: text search, file reads, symbol definitions and
the repository's instruction files for agents.

The tree is untrusted (a pull request's author wrote it), so everything that reads it runs
inside the run's sandbox (`Workspace.exec`, ENGINE phase): ripgrep and universal-ctags parse
it there, never on the host, and a link leading out of the workspace is refused there. Only
the optional `RepositoryIndex` lives on the host, and it is built from git objects.

References are workspace paths: `path`, `path:line` (the lines around it, as `search` and
`symbols` cite them) or `path:start-end` (1-based, inclusive).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Protocol

from codefactory.context.connectors.repo_index import IndexHit
from codefactory.context.errors import (
    ContextError,
    NotFound,
    OutOfScope,
    ResponseTooLarge,
    SourceUnavailable,
)
from codefactory.context.port import ContextItem, Scope
from codefactory.context.text import clip
from codefactory.domain import ExecResult
from codefactory.sandbox.limits import Limits
from codefactory.sandbox.port import Phase, Workspace

RG = "/usr/bin/rg"
CTAGS = "/usr/bin/ctags"
MAX_COLUMNS = 300
MATCHES_PER_FILE = 5
MAX_QUERY_CHARS = 500
SYMBOL_FILES = 100
"""`symbols` runs ctags over at most this many files mentioning a word (in path order)."""
WINDOW_LINES = 20
"""`path:line` shows this many lines either side of `line`."""
INSTRUCTION_FILES = (
    "AGENTS.md",
    "CLAUDE.md",
    ".github/copilot-instructions.md",
    ".cursorrules",
    ".cursor/rules/*.mdc",
    "CONTRIBUTING.md",
    ".github/AGENTS.md",
    ".github/CLAUDE.md",
    ".github/CONTRIBUTING.md",
)
"""Where agents' instruction files live, most specific first (a glob in the last part)."""

_REF = re.compile(r"(?P<path>.+?)(?::(?P<start>\d+)(?:-(?P<end>\d+))?)?")
_RG_FLAGS = ("--no-config", "--no-follow", "--hidden", "--no-require-git", "--glob", "!.git")
# One file, checked inside the sandbox: the real path must stay in the workspace.
_CHECK = r"""root=$(pwd -P) || exit 9
p=$(/usr/bin/realpath -e -- "$1" 2>/dev/null) || exit 3
case "$p" in "$root"/*) ;; *) exit 4 ;; esac
test -f "$p" || exit 5
/usr/bin/head -c 8192 -- "$p" | /usr/bin/tr -d -c '\000' | /usr/bin/wc -c
/usr/bin/stat -c %s -- "$p"
printf '%s' "${p#"$root"/}"
"""
# Instruction files: each regular, text, inside the workspace, framed by a nonce line.
_INSTRUCTIONS = r"""root=$(pwd -P) || exit 9
nonce=$1; cap=$2; shift 2
for pattern in "$@"; do for f in $pattern; do
  test -f "$f" || continue
  p=$(/usr/bin/realpath -e -- "$f" 2>/dev/null) || continue
  case "$p" in "$root"/*) ;; *) continue ;; esac
  n=$(/usr/bin/head -c 8192 -- "$p" | /usr/bin/tr -d -c '\000' | /usr/bin/wc -c)
  test "$n" -eq 0 || continue
  printf '%s %s %s\n' "$nonce" "$(/usr/bin/stat -c %s -- "$p")" "$f"
  /usr/bin/head -c "$cap" -- "$p"
done; done
"""
_SYMBOLS = r"""files=$1; shift
test -x /usr/bin/ctags || { echo "universal-ctags is not installed in the sandbox" >&2; exit 3; }
/usr/bin/rg --files-with-matches --fixed-strings --ignore-case --sort path \
  --max-filesize 1M "$@" . | /usr/bin/head -n "$files" | \
  /usr/bin/ctags --options=NONE --links=no --output-format=json --fields=+n -L - -f - | \
  /usr/bin/rg --fixed-strings --ignore-case "$@"
test "$?" -le 1
"""
# Only tags whose JSON line mentions a word leave the sandbox: a common word in a large
# repository would otherwise send megabytes of tags to be thrown away.
_LINES = r"""nonce=$1; shift
while [ "$#" -ge 3 ]; do
  printf '%s\n' "$nonce"
  /usr/bin/sed -n "${1},${2}p" -- "$3"
  shift 3
done
"""


DEFINITIONS_PREFIX = "def:"


class TextIndex(Protocol):
    """What the connector asks of a full-text index (`RepositoryIndex`, `LazyIndex`)."""

    @property
    def commit(self) -> str | None:
        """The commit its answers are of."""
        ...

    def search(self, query: str, *, limit: int = 10) -> list[IndexHit]:
        """Files holding every word of `query`, best first."""
        ...


class BinaryFile(ContextError):
    """The file holds binary data (a NUL byte in its first 8 KiB); no text to show."""

    kind = "binary"


class InvalidInput(ContextError):
    """A query or reference that cannot be read: empty, too long, a NUL, a bad line range."""

    kind = "invalid-input"


@dataclass(frozen=True, kw_only=True)
class _Match:
    path: str
    lines: tuple[tuple[int, str], ...]


class RepositoryConnector:
    """The repository of one run, read through its sandbox workspace."""

    name = "repository"

    def __init__(
        self,
        workspace: Workspace,
        *,
        repository: str,
        data_class: str,
        index: TextIndex | None = None,
        max_item_chars: int = 20_000,
        timeout_s: float = 20.0,
        max_output_bytes: int = 2_000_000,
        max_file_bytes: int = 5_000_000,
    ) -> None:
        """`repository`: the repository id (the scope's one value); `index`: a host-side
        index of the workspace's base commit, merged into multi-word searches;
        `timeout_s` and `max_output_bytes` bound each sandboxed command; `max_file_bytes`
        is the largest file `fetch` reads (larger: `ResponseTooLarge`)."""
        self.workspace = workspace
        self.repository = repository
        self.data_class = data_class
        self.scope = Scope(kind="repository", values=(repository,))
        self.index = index
        self.max_item_chars = max_item_chars
        self.timeout_s = timeout_s
        self.max_output_bytes = max_output_bytes
        self.max_file_bytes = max_file_bytes

    def search(self, query: str, *, limit: int = 10) -> list[ContextItem]:
        """Files holding `query` as written (ripgrep, fixed string, case-insensitive), one
        item per file: id `path:line` of its first match, text `line: text` of up to five
        matching lines (each cut at 300 characters); most matches first, then by path.
        A query of several words also brings the index's files holding every word (after
        ripgrep's, when there is room). A query `def:NAME` asks for NAME's definitions
        instead (`symbols`), so the one governed search serves both. Raises
        `InvalidInput`, `SourceUnavailable`."""
        text = self._plain(query)
        if text.startswith(DEFINITIONS_PREFIX) and text[len(DEFINITIONS_PREFIX) :].strip():
            return self.symbols(text[len(DEFINITIONS_PREFIX) :].strip(), limit=limit)
        return self._text_search(text, limit)

    def _text_search(self, text: str, limit: int) -> list[ContextItem]:
        command = [RG, "--json", "--fixed-strings", "--ignore-case", "--sort", "path"]
        command += ["--max-count", str(MATCHES_PER_FILE), "--max-columns", str(MAX_COLUMNS)]
        command += [*_RG_FLAGS, "--max-filesize", "1M", "--regexp", text, "--", "."]
        result = self._exec(command)
        if result.exit_code not in (0, 1) and not result.stdout:
            raise SourceUnavailable(self.name, f"ripgrep failed: {_error_text(result)}")
        matches = sorted(_rg_matches(result.stdout), key=lambda m: (-len(m.lines), m.path))
        items = [self._match_item(match) for match in matches[:limit]]
        if self.index is not None and len(text.split()) > 1 and len(items) < limit:
            items += self._indexed(text, limit - len(items), {m.path for m in matches})
        return items

    def fetch(self, ref: str) -> ContextItem:
        """The file `ref` names, whole or the lines it names (`path`, `path:line`,
        `path:start-end`). Raises `OutOfScope` (absolute, `..`, NUL, `.git`, or a link
        leading out of the workspace), `NotFound`, `BinaryFile`, `ResponseTooLarge`,
        `InvalidInput` (a bad range)."""
        path, lines = self._parse_ref(ref)
        resolved, size = self._check_file(path)
        if size > self.max_file_bytes:
            raise ResponseTooLarge(
                self.name, f"{path} has {size} bytes, more than {self.max_file_bytes}"
            )
        content = self.workspace.read_file(resolved, phase=Phase.ENGINE)
        if content is None:
            raise NotFound(self.name, f"no such file: {path}")
        text = content.decode("utf-8", "replace")
        title = path
        if lines is not None:
            all_lines = text.splitlines()
            start, end = lines[0], min(lines[1], len(all_lines))
            if start > len(all_lines):
                raise InvalidInput(self.name, f"{path} has only {len(all_lines)} lines")
            text = "\n".join(all_lines[start - 1 : end])
            title = f"{path} lines {start}-{end} of {len(all_lines)}"
            path = f"{path}:{start}-{end}"
        return self._item(path, title, text, uri=resolved)

    def symbols(self, name_or_query: str, *, limit: int = 10) -> list[ContextItem]:
        """Definitions (universal-ctags, run in the sandbox over the files that mention a
        word) whose name is a word of `name_or_query`, or contains one: exact name first.
        Each item: id `path:line`, title `kind name`, text the lines from two before the
        definition to fifteen after. Raises `InvalidInput`, `SourceUnavailable`."""
        words = self._plain(name_or_query).split()
        patterns = [item for word in words for item in ("--regexp", word)]
        command = ["/usr/bin/sh", "-c", _SYMBOLS, "sh", str(SYMBOL_FILES), *_RG_FLAGS, *patterns]
        result = self._exec(command)
        if not result.ok and not result.stdout:
            raise SourceUnavailable(self.name, f"ctags failed: {_error_text(result)}")
        tags = sorted(_ranked_tags(result.stdout, words))[:limit]
        windows = [(max(1, line - 2), line + 15, path) for _, path, line, _ in tags]
        bodies = self._line_windows(windows)
        return [
            self._item(f"{path}:{line}", f"{kind} at {path}:{line}", body, uri=path)
            for (_, path, line, kind), body in zip(tags, bodies, strict=True)
        ]

    def instructions(self) -> list[ContextItem]:
        """The repository's instruction files for agents (`INSTRUCTION_FILES`) that exist
        as text files inside the workspace, each clipped. Untrusted text: it describes the
        repository's conventions and grants nothing."""
        nonce = secrets.token_hex(16)
        cap = str(self.max_item_chars * 4)
        command = ["/usr/bin/sh", "-c", _INSTRUCTIONS, "sh", nonce, cap, *INSTRUCTION_FILES]
        result = self._exec(command)
        if not result.ok:
            raise SourceUnavailable(self.name, f"cannot list instructions: {_error_text(result)}")
        items: list[ContextItem] = []
        for header, body in _frames(result.stdout, nonce):
            size, _, path = header.partition(" ")
            item = self._item(path, f"{path} (the repository's instructions for agents)", body)
            cut = int(size) - len(body.encode())
            if cut > 0 and not item.truncated:
                note = f"\n[truncated: {cut} more bytes not shown]"
                item = item.with_text(item.text + note, truncated=True)
            items.append(item)
        return items

    def _plain(self, query: str) -> str:
        text = query.strip()
        if not text or "\0" in text or len(text) > MAX_QUERY_CHARS:
            raise InvalidInput(
                self.name, f"a query must be 1 to {MAX_QUERY_CHARS} characters of text"
            )
        return text

    def _parse_ref(self, ref: str) -> tuple[str, tuple[int, int] | None]:
        match = _REF.fullmatch(ref.strip())
        if match is None or "\0" in ref:
            raise OutOfScope(self.name, f"{ref!r} is not a path in the repository")
        pure = PurePosixPath(match["path"])
        if pure.is_absolute() or ".." in pure.parts or ".git" in pure.parts or str(pure) == ".":
            raise OutOfScope(
                self.name, f"{ref!r} is outside the repository: give a path such as src/app.py"
            )
        if match["start"] is None:
            return str(pure), None
        start = int(match["start"])
        end = int(match["end"]) if match["end"] else start + WINDOW_LINES
        start = max(1, start - WINDOW_LINES) if match["end"] is None else start
        if start < 1 or end < start:
            raise InvalidInput(self.name, f"{ref!r}: lines are numbered from 1, start <= end")
        return str(pure), (start, end)

    def _check_file(self, path: str) -> tuple[str, int]:
        """`(path as the sandbox resolves it, size)`; the refusals `fetch` names."""
        result = self._exec(["/usr/bin/sh", "-c", _CHECK, "sh", path])
        if result.exit_code == 4:
            raise OutOfScope(self.name, f"{path} leads out of the repository (a link)")
        if result.exit_code in (3, 5):
            raise NotFound(self.name, f"no such file in the repository: {path}")
        fields = result.stdout.split("\n", 2)
        if not result.ok or len(fields) != 3 or not fields[1].isdigit():
            raise SourceUnavailable(self.name, f"cannot read {path}: {_error_text(result)}")
        if fields[0].strip() != "0":
            raise BinaryFile(self.name, f"{path} is a binary file of {fields[1]} bytes")
        return fields[2], int(fields[1])

    def _indexed(self, query: str, room: int, seen: set[str]) -> list[ContextItem]:
        assert self.index is not None
        commit = (self.index.commit or "")[:12]
        items: list[ContextItem] = []
        for hit in self.index.search(query, limit=room + len(seen)):
            if hit.path in seen or len(items) == room:
                continue
            ref = f"{hit.path}:{hit.line}" if hit.line else hit.path
            title = f"{hit.path} (every word, from the index at {commit})"
            items.append(self._item(ref, title, hit.snippet, uri=hit.path))
        return items

    def _line_windows(self, windows: Sequence[tuple[int, int, str]]) -> list[str]:
        if not windows:
            return []
        nonce = secrets.token_hex(16)
        args = [str(part) for window in windows for part in window]
        result = self._exec(["/usr/bin/sh", "-c", _LINES, "sh", nonce, *args])
        bodies = result.stdout.split(nonce + "\n")[1:]
        return bodies + [""] * (len(windows) - len(bodies))

    def _match_item(self, match: _Match) -> ContextItem:
        first = match.lines[0][0]
        text = "\n".join(f"{number}: {line}" for number, line in match.lines)
        title = f"{match.path} ({len(match.lines)} matching lines)"
        return self._item(f"{match.path}:{first}", title, text, uri=match.path)

    def _item(self, ref: str, title: str, text: str, *, uri: str = "") -> ContextItem:
        shown, truncated = clip(text, self.max_item_chars)
        return ContextItem(
            source=self.name,
            id=ref,
            title=title,
            text=shown,
            data_class=self.data_class,
            uri=uri or ref,
            truncated=truncated,
        )

    def _exec(self, command: list[str]) -> ExecResult:
        limits = Limits(wall_s=self.timeout_s, output_bytes=self.max_output_bytes)
        result = self.workspace.exec(
            command, phase=Phase.ENGINE, timeout_s=self.timeout_s, limits=limits
        )
        if result.timed_out and not result.stdout:
            raise SourceUnavailable(self.name, f"no answer within {self.timeout_s:g} s")
        return result


def _rg_matches(output: str) -> Iterator[_Match]:
    """ripgrep's JSON Lines (`--json`): one `_Match` per file; an incomplete last line (the
    output limit cut it) is dropped."""
    lines: dict[str, list[tuple[int, str]]] = {}
    for raw in output.splitlines():
        try:
            message = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if message.get("type") != "match":
            continue
        data = message["data"]
        path = _strip_dot(_rg_text(data["path"]))
        text = _rg_text(data["lines"]).rstrip("\n")[:MAX_COLUMNS]
        lines.setdefault(path, []).append((int(data["line_number"]), text))
    for path, found in lines.items():
        yield _Match(path=path, lines=tuple(found))


def _rg_text(field: dict[str, str]) -> str:
    """ripgrep's text field: `text`, or `bytes` (base64) for what is not UTF-8."""
    if "text" in field:
        return field["text"]
    return base64.b64decode(field.get("bytes", "")).decode("utf-8", "replace")


def _ranked_tags(output: str, words: list[str]) -> Iterator[tuple[int, str, int, str]]:
    """`(score, path, line, "kind scope.name")` of the tags named by a word (0: exactly,
    1: but for case, 2: containing it)."""
    folded = [word.casefold() for word in words]
    for raw in output.splitlines():
        try:
            tag = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if tag.get("_type") != "tag" or "line" not in tag:
            continue
        name = str(tag.get("name", ""))
        if name in words:
            score = 0
        elif name.casefold() in folded:
            score = 1
        elif any(word in name.casefold() for word in folded):
            score = 2
        else:
            continue
        scope = f"{tag['scope']}." if tag.get("scope") else ""
        label = f"{tag.get('kind', 'tag')} {scope}{name}"
        yield score, _strip_dot(str(tag["path"])), int(tag["line"]), label


def _frames(output: str, nonce: str) -> Iterator[tuple[str, str]]:
    """`(header, body)` of each `nonce header\\n body` frame."""
    for frame in output.split(nonce + " ")[1:]:
        header, _, body = frame.partition("\n")
        yield header, body


def _strip_dot(path: str) -> str:
    return path[2:] if path.startswith("./") else path


def _error_text(result: ExecResult) -> str:
    text = (result.stderr or result.stdout).strip()[-300:]
    if result.limit_hit:
        text = f"the sandbox's {result.limit_hit} limit was hit. {text}"
    return text or f"exit code {result.exit_code}"
