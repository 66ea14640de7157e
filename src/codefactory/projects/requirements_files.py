"""pip requirements files (pip's "Requirements File Format"): which ones a project installs,
and every file they pull in with `-r` / `-c` (relative to the including file, as pip reads
them), so that an image is keyed by all of them."""

from __future__ import annotations

import codecs
import posixpath
import re
from dataclasses import dataclass, field

from codefactory.projects.files import posix_join
from codefactory.projects.model import FileSource

_ROOT_REQUIREMENTS = re.compile(r"([\w.-]*[-_.])?requirements?([-_.][\w.-]*)?\.txt", re.I)
_ROOT_CONSTRAINTS = re.compile(r"constraints?([-_.][\w.-]*)?\.txt", re.I)
_FOLDERS = ("requirements", "reqs", "requirement")
_SKIPPED = re.compile(r"doc", re.I)
"""Documentation requirements (Sphinx and its themes) are not what tests need."""
_INCLUDE = re.compile(
    r"^\s*(?P<flag>-r|--requirement|-c|--constraint)(?:\s*=\s*|\s+|(?<=-r)|(?<=-c))(?P<path>\S+)"
)
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass
class RequirementFiles:
    """What a project's requirements files ask for."""

    roots: list[str] = field(default_factory=list)
    """Passed to the installer with `-r` (files no other candidate includes)."""
    constraints: list[str] = field(default_factory=list)
    """Root constraints files no requirements file includes, passed with `-c`."""
    inputs: set[str] = field(default_factory=set)
    """Every file read: roots, constraints and everything they include, at any depth."""
    names: set[str] = field(default_factory=set)
    """Normalised (PEP 503) names of every requirement they list."""
    problems: list[str] = field(default_factory=list)


def decode(data: bytes) -> str:
    """Text as pip reads a requirements file: a UTF-8/16/32 byte-order mark decides, else
    UTF-8 (undecodable bytes kept as replacement characters)."""
    for bom, encoding in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                          (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                          (codecs.BOM_UTF16_BE, "utf-16")):  # fmt: skip
        if data.startswith(bom):
            return data.decode(encoding, "replace")
    return data.decode("utf-8", "replace")


def normalise(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def find_requirement_files(files: FileSource, paths: list[str]) -> RequirementFiles:
    """The root requirements files (at the root, or in a `requirements/` folder when the root
    has none) and root constraints files, with everything they include."""
    found = RequirementFiles()
    top = [p for p in paths if "/" not in p and _ROOT_REQUIREMENTS.fullmatch(p)]
    if not top:
        top = [p for p in paths if posixpath.dirname(p) in _FOLDERS and p.endswith(".txt")]
    candidates = sorted(p for p in top if not _SKIPPED.search(p))
    included: set[str] = set()
    constrained: set[str] = set()
    for path in candidates:
        _follow(files, path, found, included, constrained, depth=0)
    found.roots = [p for p in candidates if p not in included]
    found.constraints = sorted(
        p for p in paths if "/" not in p and _ROOT_CONSTRAINTS.fullmatch(p) and p not in constrained
    )
    for path in found.constraints:
        _follow(files, path, found, included, constrained, depth=0)
    return found


def read_requirement_file(files: FileSource, path: str, found: RequirementFiles) -> None:
    """Add `path` (named by tox.ini, a noxfile or the config) and its includes to `found`."""
    _follow(files, path, found, set(), set(), depth=0)


def requirement_names(text: str) -> set[str]:
    """The normalised names of the requirement lines of a requirements file's text."""
    names = set()
    for line in text.replace("\\\n", " ").splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        found = _NAME.match(line)
        if found is not None and "://" not in line.split(";", 1)[0].split("@", 1)[0]:
            names.add(normalise(found[1]))
    return names


def _follow(
    files: FileSource,
    path: str,
    found: RequirementFiles,
    included: set[str],
    constrained: set[str],
    *,
    depth: int,
) -> None:
    if path in found.inputs or depth > 20:
        return
    data = files.read(path)
    if data is None:
        found.problems.append(f"{path} is not a file of the tree (or a link out of it)")
        return
    found.inputs.add(path)
    text = decode(data)
    found.names |= requirement_names(text)
    folder = posixpath.dirname(path)
    for line in text.replace("\\\n", " ").splitlines():
        match = _INCLUDE.match(line)
        if match is None:
            continue
        target = posix_join(folder, match["path"])
        if target.startswith("../") or target == "..":
            found.problems.append(f"{path} includes {match['path']}, outside the repository")
            continue
        (constrained if match["flag"] in ("-c", "--constraint") else included).add(target)
        if files.read(target) is None:
            found.problems.append(
                f"{path} includes {match['path']}, which is not a file of the tree"
            )
            continue
        _follow(files, target, found, included, constrained, depth=depth + 1)
