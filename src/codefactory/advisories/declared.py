"""What one setup input declares (setup.cfg, setup.py, tox.ini, a noxfile, the repository
config): its exact pins, unpinned requirements, includes of requirements files, and the
spots that could not be read. Shared by `setuptools.py`, `testenvs.py` and
`setup_commands.py`; `reading.py` merges it into a repository's reading.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from codefactory.advisories.model import Pin, Unpinned, Unreadable
from codefactory.advisories.requirements import Include, parse_requirements


@dataclass
class Declared:
    """The pins, unpinned requirements, `-r`/`-c` includes (paths relative to the declaring
    file's folder) and unreadable spots of one setup input; lines are 1-based."""

    pins: list[Pin] = field(default_factory=list)
    unpinned: list[Unpinned] = field(default_factory=list)
    includes: list[Include] = field(default_factory=list)
    problems: list[Unreadable] = field(default_factory=list)

    def pip_line(self, path: str, line: int, text: str) -> None:
        """One pip argument line (`idna==3.6`, `-r req.txt`, `-e .`, `pkg @ url`) written at
        `line` of `path`, read as pip reads a line of a requirements file."""
        read = parse_requirements(path, "\n" * (line - 1) + text)
        self.pins.extend(entry.pin for entry in read.located)
        self.unpinned.extend(read.unpinned)
        self.includes.extend(read.includes)
        self.problems.extend(read.problems)

    def requirement(self, path: str, line: int, text: str) -> None:
        """One PEP 508 requirement string as setuptools reads it (`install_requires`,
        `extras_require`): no pip option is allowed in it."""
        if text.lstrip().startswith("-"):
            reason = f"{text!r} is not a PEP 508 requirement (setuptools reads no pip option)"
            self.problems.append(Unreadable(file=path, line=line, reason=reason))
            return
        self.pip_line(path, line, text)

    def unreadable(self, path: str, line: int, reason: str) -> None:
        """A spot that cannot be read statically, named with what it is."""
        self.problems.append(Unreadable(file=path, line=line, reason=reason))


def shown(node: ast.AST, limit: int = 80) -> str:
    """The source of an expression as a reason names it: at most `limit` characters, and
    `<expression too deep to show>` when it is nested beyond what `ast.unparse` recurses."""
    try:
        text = ast.unparse(node)
    except (RecursionError, MemoryError):
        return "<expression too deep to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
