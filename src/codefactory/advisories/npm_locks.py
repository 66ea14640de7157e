"""Resolved versions in npm-ecosystem lock files, read as npm, pnpm and yarn write them.

- `package-lock.json` / `npm-shrinkwrap.json`: lockfileVersion 2 and 3 are read from
  `packages` (keys are install paths: `node_modules/a/node_modules/@s/b`; the package's name
  is the last `node_modules/` segment unless the entry names it, as an `npm:` alias does);
  version 1 from the nested `dependencies` tree (an alias's version is `npm:name@1.2.3`).
  Workspace folders, `link` entries and versions resolved from a path, a tarball URL or git
  have no registry release and are reported as unpinned.
- `pnpm-lock.yaml`: `packages` (and v9 `snapshots`) keys are `/name/1.0.0` (v5),
  `/name@1.0.0` (v6) or `name@1.0.0` (v9), scoped names included, with peer suffixes
  (`_peer@2` in v5, `(peer@2)` since v6) that do not change the version.
- `yarn.lock` v1 (yarn's own format, read by a small parser below: the format is a fixed
  subset of YAML written by yarn, `key "value"` pairs under comma-separated specifier
  headers; no maintained PyPI library reads it) and berry (v2+, YAML with `__metadata`):
  berry's `resolution: name@npm:1.0.0` names the package and its registry version.

Each Pin has `ecosystem="npm"`; what cannot be read is an `Unreadable` spot with its line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote

import yaml

from codefactory.advisories.model import NPM, Pin, Unpinned, Unreadable

NPM_LOCKS = ("package-lock.json", "npm-shrinkwrap.json", "pnpm-lock.yaml", "yarn.lock")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SEMVER = re.compile(r"^v?\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")


@dataclass
class NpmLock:
    """What one npm-ecosystem lock file resolves."""

    pins: list[Pin] = field(default_factory=list)
    unpinned: list[Unpinned] = field(default_factory=list)
    problems: list[Unreadable] = field(default_factory=list)


def is_npm_lock(path_name: str) -> bool:
    """Whether a file name is an npm, pnpm or yarn lock file."""
    return PurePosixPath(path_name).name in NPM_LOCKS


def read_npm_lock(path: str, text: str) -> NpmLock:
    """Every registry version a lock file resolves, with unpinned entries and problems."""
    base = PurePosixPath(path).name
    out = NpmLock()
    try:
        if base == "pnpm-lock.yaml":
            _pnpm(path, text, out)
        elif base == "yarn.lock":
            if re.search(r"^__metadata:", text, re.MULTILINE):
                _berry(path, text, out)
            else:
                _yarn_v1(path, text, out)
        else:
            _package_lock(path, text, out)
    except json.JSONDecodeError as exc:
        out.problems.append(Unreadable(file=path, line=exc.lineno, reason=f"not JSON: {exc.msg}"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        reason = f"not YAML: {' '.join(str(exc).split())}"
        out.problems.append(Unreadable(file=path, line=line, reason=reason))
    except (TypeError, KeyError, AttributeError, ValueError) as exc:
        out.problems.append(Unreadable(file=path, line=0, reason=f"unexpected structure: {exc!r}"))
    return out


def _registry_version(version: str) -> bool:
    return bool(_SEMVER.match(version))


# package-lock.json / npm-shrinkwrap.json ----------------------------------------------------


def _package_lock(path: str, text: str, out: NpmLock) -> None:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("the lock file is not a JSON object")
    version = data.get("lockfileVersion")
    lines = _JsonKeyLines(text)
    packages = data.get("packages")
    if version in (2, 3) or isinstance(packages, dict):
        if not isinstance(packages, dict):
            raise ValueError(f"lockfileVersion {version} without a `packages` object")
        for key, entry in packages.items():
            _package_entry(path, key, entry, lines.next(key), out)
    elif version == 1 or "dependencies" in data:
        _v1_tree(path, data.get("dependencies") or {}, lines, out)
    else:
        reason = f"unknown lockfileVersion {version!r} and no `packages` or `dependencies`"
        out.problems.append(Unreadable(file=path, line=0, reason=reason))


def _package_entry(path: str, key: str, entry: Any, line: int, out: NpmLock) -> None:
    if not isinstance(entry, dict):
        raise TypeError(f"`packages[{key!r}]` is not an object")
    if "node_modules/" not in f"/{key}" or entry.get("link"):
        return  # the root project, a workspace folder, or a link to one
    name = entry.get("name") or key.rsplit("node_modules/", 1)[1]
    version = entry.get("version")
    if not isinstance(version, str):
        out.problems.append(Unreadable(file=path, line=line, reason=f"{key} has no version"))
        return
    _judge(path, str(name), version, line, out, resolved=str(entry.get("resolved") or ""))


def _v1_tree(path: str, tree: Any, lines: _JsonKeyLines, out: NpmLock) -> None:
    if not isinstance(tree, dict):
        raise TypeError("`dependencies` is not an object")
    for key, entry in tree.items():
        if not isinstance(entry, dict):
            raise TypeError(f"`dependencies[{key!r}]` is not an object")
        line = lines.next(key)
        version = str(entry.get("version", ""))
        name = key
        if version.startswith("npm:"):  # an alias: `npm:real-name@1.2.3`
            name, _, version = version[4:].rpartition("@")
        _judge(path, name, version, line, out, resolved=str(entry.get("resolved") or ""))
        _v1_tree(path, entry.get("dependencies") or {}, lines, out)


def _judge(path: str, name: str, version: str, line: int, out: NpmLock, *, resolved: str) -> None:
    local = resolved.startswith(("file:", "git", "link:")) or version.startswith(
        ("file:", "git", "link:")
    )
    if local or not _registry_version(version):
        what = f"{name}@{version or resolved}"
        out.unpinned.append(Unpinned(file=path, line=line, requirement=what, kind="url"))
        return
    out.pins.append(
        Pin(file=path, name=name, version=version.lstrip("v"), line=line, ecosystem=NPM)
    )


class _JsonKeyLines:
    """The line of each `"key": {` in document order (JSON objects keep their text order)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.cursor = 0

    def next(self, key: str) -> int:
        needle = re.compile(r"^\s*" + re.escape(json.dumps(key)) + r"\s*:\s*\{")
        for index in range(self.cursor, len(self.lines)):
            if needle.match(self.lines[index]):
                self.cursor = index + 1
                return index + 1
        return 0


# pnpm-lock.yaml ----------------------------------------------------------------------------

_PNPM_PEERS = re.compile(r"\(.*\)$")


def _pnpm(path: str, text: str, out: NpmLock) -> None:
    data, lines = _load_yaml(text)
    if data is None:
        return
    if not isinstance(data, dict):
        raise ValueError("the lock file is not a YAML mapping")
    version = str(data.get("lockfileVersion") or "")
    seen: set[tuple[str, str]] = set()
    for section in ("packages", "snapshots"):
        entries = data.get(section)
        if entries is None:
            continue
        if not isinstance(entries, dict):
            raise ValueError(f"`{section}` is not a mapping")
        for key, fields in entries.items():
            line = lines.get((section, str(key)), 0)
            parsed = _pnpm_key(str(key), version, fields if isinstance(fields, dict) else {})
            if parsed is None:
                out.unpinned.append(Unpinned(file=path, line=line, requirement=key, kind="url"))
            elif parsed not in seen:
                seen.add(parsed)
                _judge(path, parsed[0], parsed[1], line, out, resolved="")


def _load_yaml(text: str) -> tuple[Any, dict[tuple[str, str], int]]:
    """The document and the 1-based line of each key of its top two mapping levels."""
    loader = _LOADER(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, {}
        lines: dict[tuple[str, str], int] = {}
        if isinstance(root, yaml.MappingNode):
            for key_node, value_node in root.value:
                lines[("", str(key_node.value))] = key_node.start_mark.line + 1
                if isinstance(value_node, yaml.MappingNode):
                    for inner, _ in value_node.value:
                        lines[(str(key_node.value), str(inner.value))] = inner.start_mark.line + 1
        return loader.construct_document(root), lines
    finally:
        loader.dispose()


def _pnpm_key(key: str, lockfile_version: str, fields: dict[str, Any]) -> tuple[str, str] | None:
    """(name, version) of a `packages`/`snapshots` key; None when not from the registry."""
    resolution = fields.get("resolution")
    if isinstance(resolution, dict) and ("tarball" in resolution or "repo" in resolution):
        return None  # a tarball URL or a git repository, not a registry release
    if lockfile_version.split(".")[0] in ("3", "4", "5"):
        # v5: `/name/1.0.0`, `/@scope/name/1.0.0`, peers as `/name/1.0.0_peer@2.0.0`
        if not key.startswith("/"):
            return None  # `github.com/user/repo/sha`, another registry's host
        parts = key[1:].split("/")
        scoped = parts[0].startswith("@")
        if len(parts) != (3 if scoped else 2):
            return None
        name, version = "/".join(parts[:-1]), parts[-1].split("_", 1)[0]
    else:
        # v6: `/name@1.0.0(peer@2.0.0)`; v9: `name@1.0.0(peer@2.0.0)`
        body = _PNPM_PEERS.sub("", key[1:] if key.startswith("/") else key)
        at = body.rfind("@")
        if at <= 0:
            return None
        name, version = body[:at], body[at + 1 :]
    if not name or ":" in name or not _registry_version(version):
        return None
    return name, version


# yarn.lock v1 ------------------------------------------------------------------------------

_NOT_REGISTRY = ("file:", "link:", "portal:", "git", "github:", "gitlab:", "bitbucket:", "http")
_YARN_PAIR = re.compile(r'^(?P<key>"(?:[^"\\]|\\.)*"|[^\s"]+)\s+(?P<value>"(?:[^"\\]|\\.)*"|\S+)$')


def _yarn_v1(path: str, text: str, out: NpmLock) -> None:
    """yarn's v1 format: top-level `spec, spec:` headers, two-space `key value` fields,
    deeper blocks (`dependencies:`) that say nothing about this package's own version."""
    for header, line, fields in _yarn_blocks(path, text, out):
        specs = [_unquote(s.strip()) for s in header.rstrip(":").split(",")]
        name = _spec_name(specs[0])
        if name is None:
            out.problems.append(Unreadable(file=path, line=line, reason=f"cannot read {header!r}"))
            continue
        range_ = specs[0][len(name) + 1 :]
        if range_.startswith("npm:"):  # `alias@npm:real@^1`
            real = range_[4:]
            name = _spec_name(real) or real
        version = fields.get("version")
        if range_.startswith(_NOT_REGISTRY) or "://" in range_:
            what = f"{name}@{range_}"
            out.unpinned.append(Unpinned(file=path, line=line, requirement=what, kind="url"))
            continue
        if version is None:
            out.problems.append(Unreadable(file=path, line=line, reason=f"{header} has no version"))
            continue
        _judge(path, name, version, line, out, resolved=_yarn_resolved(fields.get("resolved", "")))


def _yarn_resolved(resolved: str) -> str:
    return "" if not resolved or "/-/" in resolved else resolved


def _yarn_blocks(path: str, text: str, out: NpmLock) -> Iterator[tuple[str, int, dict[str, str]]]:
    header: tuple[str, int] | None = None
    fields: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if not line or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip(" "))
        if indent == 0:
            if header is not None:
                yield header[0], header[1], fields
            if not line.endswith(":"):
                out.problems.append(
                    Unreadable(file=path, line=number, reason=f"not a yarn.lock entry: {line!r}")
                )
                header = None
                continue
            header, fields = (line, number), {}
        elif header is None:
            continue  # the fields of an entry already reported
        elif indent == 2 and not line.endswith(":"):
            pair = _YARN_PAIR.match(line.strip())
            if pair is None:
                out.problems.append(
                    Unreadable(file=path, line=number, reason=f"cannot read {line.strip()!r}")
                )
                continue
            fields[_unquote(pair.group("key"))] = _unquote(pair.group("value"))
    if header is not None:
        yield header[0], header[1], fields


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return str(json.loads(text))
    return text


def _spec_name(spec: str) -> str | None:
    """The package name of a `name@range` specifier (`@scope/name@^1`)."""
    at = spec.find("@", 1)
    return spec[:at] if at > 0 else None


# yarn.lock berry ---------------------------------------------------------------------------

_PATCH = re.compile(r"^(?P<name>@?[^@]+)@patch:(?P<inner>[^#]+)")


def _berry(path: str, text: str, out: NpmLock) -> None:
    data, lines = _load_yaml(text)
    if not isinstance(data, dict):
        raise ValueError("the lock file is not a YAML mapping")
    for key, fields in data.items():
        line = lines.get(("", str(key)), 0)
        if key == "__metadata":
            continue
        resolution = fields.get("resolution") if isinstance(fields, dict) else None
        if not isinstance(resolution, str):
            out.problems.append(Unreadable(file=path, line=line, reason=f"{key} has no resolution"))
            continue
        patch = _PATCH.match(resolution)
        if patch is not None:  # `resolve@patch:resolve@npm%3A1.22.1#...`: the patched release
            resolution = unquote(patch.group("inner"))
        name = _spec_name(resolution)
        reference = resolution[len(name) + 1 :] if name else ""
        if name is None or not reference.startswith("npm:"):
            if not reference.startswith("workspace:"):
                out.unpinned.append(
                    Unpinned(file=path, line=line, requirement=resolution, kind="url")
                )
            continue
        _judge(path, name, reference[4:], line, out, resolved="")
