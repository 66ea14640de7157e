"""pip requirements files read as pip reads them (`pip/_internal/req/req_file.py`).

- bytes are decoded like pip's `auto_decode`: a UTF-32/UTF-16/UTF-8 byte-order mark, else a
  PEP 263 `coding:` comment in the first two lines, else UTF-8;
- physical lines ending in `\\` are joined (`join_lines`), comments (`#` at the start or after
  whitespace) are dropped, then each logical line is split into the requirement and its
  options at the first token starting with `-` (`break_args_options`);
- options are pip's: `-r`/`-c` includes, `-e`, the index and build options of a file, the
  per-requirement `--hash` and `--config-settings`; any other option is not understood;
- the requirement is a PEP 508 string, a URL, a VCS URL or a local path, told apart as pip's
  `parse_req_from_line` does. Only `==` (without `*`) and `===` pin a version; everything
  else is reported as unpinned with its kind, never dropped.

Nothing here touches a file: `parse_requirements` reads text, `rewrite_requirement` returns
new text in which only the version (and, when given, the hashes) changed.
"""

from __future__ import annotations

import codecs
import re
import shlex
from dataclasses import dataclass, field

from packaging.requirements import InvalidRequirement, Requirement

from codefactory.advisories.model import DeclaringFile, Located, Pin, Unpinned, Unreadable

_BOMS = (  # UTF-32 first: the UTF-16 LE mark is a prefix of the UTF-32 LE one
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_CODING = re.compile(rb"coding[:=]\s*([-\w.]+)")
_COMMENT = re.compile(r"(^|\s+)#.*$")
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*):")
_VCS_SCHEMES = frozenset(
    {"git", "git+http", "git+https", "git+ssh", "git+git", "git+file"}
    | {"hg+file", "hg+http", "hg+https", "hg+ssh", "hg+static-http"}
    | {"svn", "svn+ssh", "svn+http", "svn+https", "svn+svn", "svn+file"}
    | {"bzr+http", "bzr+https", "bzr+ssh", "bzr+sftp", "bzr+ftp", "bzr+lp", "bzr+file"}
)
_URL_SCHEMES = frozenset({"http", "https", "file", "ftp"})
_ARCHIVES = (".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tbz", ".tar.xz", ".txz", ".tar")

# pip's requirements-file options: name → (takes a value, what it is)
_VALUE, _FLAG = True, False
_OPTIONS: dict[str, tuple[bool, str]] = {
    "-r": (_VALUE, "requirement"),
    "--requirement": (_VALUE, "requirement"),
    "-c": (_VALUE, "constraint"),
    "--constraint": (_VALUE, "constraint"),
    "-e": (_VALUE, "editable"),
    "--editable": (_VALUE, "editable"),
    "-i": (_VALUE, "index"),
    "--index-url": (_VALUE, "index"),
    "--extra-index-url": (_VALUE, "index"),
    "--no-index": (_FLAG, "index"),
    "-f": (_VALUE, "index"),
    "--find-links": (_VALUE, "index"),
    "--trusted-host": (_VALUE, "index"),
    "--pre": (_FLAG, "build"),
    "--prefer-binary": (_FLAG, "build"),
    "--require-hashes": (_FLAG, "build"),
    "--only-binary": (_VALUE, "build"),
    "--no-binary": (_VALUE, "build"),
    "--use-feature": (_VALUE, "build"),
    "-Z": (_FLAG, "build"),
    "--always-unzip": (_FLAG, "build"),
    "--hash": (_VALUE, "hash"),
    "--config-settings": (_VALUE, "per-requirement"),
    "--global-option": (_VALUE, "per-requirement"),
    "--install-option": (_VALUE, "per-requirement"),
}
_PER_REQUIREMENT = frozenset({"hash", "per-requirement"})


@dataclass(frozen=True, kw_only=True)
class Decoded:
    """A file's text and how to write it back byte-compatibly (`bom` + text in `codec`)."""

    text: str
    codec: str = "utf-8"
    bom: bytes = b""

    def encode(self, text: str) -> bytes:
        """`text` in the file's own encoding, byte-order mark included."""
        return self.bom + text.encode(self.codec)


class Undecodable(ValueError):
    """The bytes are not text in any encoding pip would use."""


def decode(data: bytes) -> Decoded:
    """Decode a requirements file as pip's `auto_decode` does; Undecodable when it cannot."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return Decoded(text=data[len(bom) :].decode(codec), codec=codec, bom=bom)
            except UnicodeDecodeError as exc:
                raise Undecodable(f"not valid {codec} after its byte-order mark: {exc}") from exc
    for line in data.split(b"\n")[:2]:
        found = _CODING.search(line) if line[:1] == b"#" else None
        if found is not None:
            codec = found.group(1).decode("ascii")
            try:
                return Decoded(text=data.decode(codec), codec=codec)
            except (LookupError, UnicodeDecodeError) as exc:
                raise Undecodable(f"not valid in its declared coding {codec}: {exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Undecodable(f"not UTF-8 and no byte-order mark or coding line: {exc}") from exc
    if "\x00" in text:
        raise Undecodable("not UTF-8 text: it holds NUL bytes (UTF-16 without a byte-order mark?)")
    return Decoded(text=text)


@dataclass(frozen=True, kw_only=True)
class Include:
    """A `-r` (`constraint=False`) or `-c` line: the path as written, relative to its file."""

    target: str
    line: int
    constraint: bool = False


@dataclass(frozen=True, kw_only=True)
class RequirementsFile(DeclaringFile):
    """What one requirements file says, and its `-r`/`-c` includes; `problems` is what pip
    would not accept."""

    includes: tuple[Include, ...] = ()


@dataclass
class _Logical:
    number: int
    text: str
    physical: list[int] = field(default_factory=list)


def logical_lines(text: str) -> list[_Logical]:
    """pip's `join_lines` + `ignore_comments`, keeping the physical lines of each."""
    out: list[_Logical] = []
    pending: _Logical | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.endswith("\\") or _COMMENT.match(line):
            if _COMMENT.match(line):
                line = " " + line  # a comment ends a continuation, as in pip
            if pending is not None:
                pending.text += line
                pending.physical.append(number)
                out.append(pending)
                pending = None
            else:
                out.append(_Logical(number, line, [number]))
        elif pending is None:
            pending = _Logical(number, line.strip("\\"), [number])
        else:
            pending.text += line.strip("\\")
            pending.physical.append(number)
    if pending is not None:
        out.append(pending)
    for logical in out:
        logical.text = _COMMENT.sub("", logical.text).strip()
    return [logical for logical in out if logical.text]


def parse_requirements(path: str, text: str) -> RequirementsFile:
    """Every pin, unpinned requirement, include and problem of a requirements file.

    `path` is the file's repository path (recorded in each Pin); `text` its decoded text.
    """
    lines = text.splitlines()
    located: list[Located] = []
    unpinned: list[Unpinned] = []
    includes: list[Include] = []
    problems: list[Unreadable] = []
    for logical in logical_lines(text):
        args, options_text = _break_args_options(logical.text)
        try:
            options = _options(options_text)
        except ValueError as exc:
            problems.append(Unreadable(file=path, line=logical.number, reason=str(exc)))
            continue
        if args:
            entry = _requirement(path, logical, args, options, lines)
            if isinstance(entry, Located):
                located.append(entry)
            elif isinstance(entry, Unpinned):
                unpinned.append(entry)
            else:
                problems.append(entry)
            continue
        for kind, name, value in options:
            if kind in ("requirement", "constraint"):
                includes.append(
                    Include(target=value, line=logical.number, constraint=kind == "constraint")
                )
            elif kind == "editable":
                unpinned.append(
                    Unpinned(file=path, line=logical.number, requirement=value, kind="editable")
                )
            elif kind in _PER_REQUIREMENT:
                reason = f"{name} without a requirement on its line"
                problems.append(Unreadable(file=path, line=logical.number, reason=reason))
    return RequirementsFile(
        located=tuple(located),
        unpinned=tuple(unpinned),
        includes=tuple(includes),
        problems=tuple(problems),
    )


def _break_args_options(line: str) -> tuple[str, str]:
    """pip's split: the requirement is every token before the first one starting with `-`."""
    tokens = line.split(" ")
    for index, token in enumerate(tokens):
        if token.startswith("-"):
            return " ".join(tokens[:index]).strip(), " ".join(tokens[index:])
    return line.strip(), ""


def _options(text: str) -> list[tuple[str, str, str]]:
    """(kind, option name, value) of each option; ValueError naming what is not pip's."""
    if not text:
        return []
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"options cannot be split ({exc}): {text}") from exc
    found: list[tuple[str, str, str]] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        name, value = _split_option(token)
        if name not in _OPTIONS:
            raise ValueError(f"unknown option {token.split('=')[0]!r} (not one pip reads)")
        takes_value, kind = _OPTIONS[name]
        if takes_value and value is None:
            if index >= len(tokens):
                raise ValueError(f"option {name} needs a value")
            value, index = tokens[index], index + 1
        elif not takes_value and value:
            raise ValueError(f"option {name} takes no value")
        found.append((kind, name, value or ""))
    return found


def _split_option(token: str) -> tuple[str, str | None]:
    if token.startswith("--"):
        name, sep, value = token.partition("=")
        return name, value if sep else None
    if len(token) > 2 and token[:2] in _OPTIONS:  # `-rbase.txt`
        return token[:2], token[2:]
    return token, None


def _requirement(
    path: str,
    logical: _Logical,
    args: str,
    options: list[tuple[str, str, str]],
    lines: list[str],
) -> Located | Unpinned | Unreadable:
    """What one requirement line is: an exact pin, an unpinned requirement or a problem."""
    hashes = tuple(value for kind, _, value in options if kind == "hash")
    kind = _reference_kind(args)
    if kind is not None:
        return Unpinned(file=path, line=logical.number, requirement=args, kind=kind)
    try:
        requirement = Requirement(args)
    except InvalidRequirement as exc:
        reason = f"not a PEP 508 requirement: {' '.join(str(exc).split())}"
        return Unreadable(file=path, line=logical.number, reason=reason)
    if requirement.url:
        url_kind = "vcs" if _scheme(requirement.url) in _VCS_SCHEMES else "url"
        return Unpinned(file=path, line=logical.number, requirement=args, kind=url_kind)
    version = exact_version(requirement)
    if version is None:
        return Unpinned(file=path, line=logical.number, requirement=args, kind="range")
    span = _version_span(version, logical.physical, lines)
    pin = Pin(
        file=path,
        name=requirement.name,
        version=version,
        line=logical.number,
        hashes=hashes,
        marker=str(requirement.marker or ""),
    )
    if span is None:  # the version is split by a line continuation: judged, not rewritable
        return Located(pin=pin, version_line=0, start=0, end=0, lines=tuple(logical.physical))
    line, start, end = span
    return Located(pin=pin, version_line=line, start=start, end=end, lines=tuple(logical.physical))


def exact_version(requirement: Requirement) -> str | None:
    """The version an `==` (without `*`) or `===` specifier pins, else None (a range)."""
    for specifier in requirement.specifier:
        if specifier.operator == "===" or (
            specifier.operator == "==" and "*" not in specifier.version
        ):
            return specifier.version
    return None


def _scheme(text: str) -> str:
    found = _SCHEME.match(text.strip())
    return found.group("scheme").lower() if found else ""


def _reference_kind(args: str) -> str | None:
    """`vcs`, `url` or `path` when pip reads `args` as a link rather than a name (pip's
    `_looks_like_path`, `is_url` and archive checks), else None."""
    scheme = _scheme(args)
    if scheme in _VCS_SCHEMES:
        return "vcs"
    if scheme in _URL_SCHEMES:
        return "url"
    head = re.split(r"\s;", args, maxsplit=1)[0].strip()
    before_at, at, _ = head.partition("@")
    if _looks_like_path(head if not at else before_at):
        return "path"
    if at:
        return None  # `name @ url`: a PEP 508 direct reference, as pip reads it
    return "path" if head.endswith(_ARCHIVES) else None


def _looks_like_path(text: str) -> bool:
    """pip's `_looks_like_path`: a separator in it, or a leading `.` (or `~`)."""
    return "/" in text or text.startswith((".", "~"))


def _version_span(
    version: str, physical: list[int], lines: list[str]
) -> tuple[int, int, int] | None:
    pattern = re.compile(r"(?<![=!<>~])(?:===|==)\s*(" + re.escape(version) + r")(?![\w.*+!-])")
    for number in physical:
        found = pattern.search(lines[number - 1])
        if found is not None:
            return number, found.start(1), found.end(1)
    return None


_HASH_OPTION = re.compile(r"[ \t]*--hash(?:=|[ \t]+)\S+")


def rewrite_requirement(
    text: str, entry: Located, new_version: str, *, hashes: tuple[str, ...] | None = None
) -> str:
    """`text` with `entry`'s version set to `new_version`; with `hashes`, its `--hash`
    options replaced by them, one continuation line each, indented as the first one was."""
    lines = text.splitlines(keepends=True)
    index = entry.version_line - 1
    line = lines[index]
    lines[index] = line[: entry.start] + new_version + line[entry.end :]
    if hashes is None:
        return "".join(lines)
    first, last = entry.lines[0] - 1, entry.lines[-1] - 1
    block = lines[first : last + 1]
    ending = "\r\n" if block[-1].endswith("\r\n") else "\n"
    indent = next(
        (m.group(1) for raw in block[1:] if (m := re.match(r"([ \t]+)--hash", raw))), "    "
    )
    kept: list[str] = []
    comment = ""
    for raw in block:
        physical = raw.rstrip("\r\n")
        found = _COMMENT.search(physical)
        code = physical[: found.start()] if found else physical
        if found is not None:
            comment = physical[found.start() :].strip()
        remnant = _HASH_OPTION.sub("", code).rstrip().removesuffix("\\").rstrip()
        if remnant.strip():
            kept.append(remnant)
    continued = [*kept[1:], *(f"{indent}--hash={value}" for value in hashes)]
    rebuilt = kept[0] + "".join(f" \\{ending}{part}" for part in continued)
    rebuilt += (f"  {comment}" if comment else "") + ending
    return "".join(lines[:first]) + rebuilt + "".join(lines[last + 1 :])
