"""Which interpreter runs a Python scanner (bandit) inside the sandbox, and which Python it
parses.

A scanner that parses source with `ast` reads only the syntax of the interpreter it runs on:
bandit on Python 3.11 cannot read a PEP 695 `def f[T](x: T)`. The setup phase builds
`SCANNERS_ENV`, a virtualenv of the factory's exact scanner versions on the project's own
Python, whenever that Python is not the factory's (`sandbox/pythons.py`); when it exists the
scanner runs there (`python -I -m bandit`: isolated, so a repository module cannot shadow
the scanner's imports). Otherwise the factory's own packages, lent read-only, run on the
sandbox's interpreter (`lent.py`), which must be the factory's Python minor version.
"""

from __future__ import annotations

from dataclasses import dataclass

from codefactory.sandbox.layout import SCANNERS_ENV
from codefactory.sandbox.port import Phase, Workspace
from codefactory.verify.lent import LENT_VERSION, scanner_command

# Prints `3.12 yes` (the version, whether bandit imports) and never imports the workspace.
_PROBE = (
    "import importlib.util, sys\n"
    "found = importlib.util.find_spec('bandit') is not None\n"
    "print('%d.%d %s' % (*sys.version_info[:2], 'yes' if found else 'no'))\n"
)


@dataclass(frozen=True, kw_only=True)
class Scanner:
    """How to start bandit, on which Python (`version`, (major, minor)), from where."""

    prefix: tuple[str, ...]
    """argv before bandit's own arguments."""
    version: tuple[int, int]
    where: str
    """`the scanners environment /env/.scanners` or `the factory's lent packages`."""
    problem: str = ""
    """Why this scanner cannot run (empty when it can): the check then could not run."""

    def command(self, args: list[str]) -> list[str]:
        return [*self.prefix, *args]

    @property
    def python(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"


def find_bandit(workspace: Workspace, *, python: str, scanners_env: str = SCANNERS_ENV) -> Scanner:
    """The bandit of `scanners_env` when that environment exists in the workspace's `/env`,
    else the lent bandit on `python` (assumed the factory's minor version: the lent
    bootstrap refuses any other). One short sandboxed command probes the environment."""
    interpreter = f"{scanners_env}/bin/python"
    probe = workspace.exec([interpreter, "-I", "-c", _PROBE], phase=Phase.CHECK, timeout_s=30)
    fields = probe.stdout.split()
    if probe.exit_code == 0 and len(fields) == 2 and _version(fields[0]) is not None:
        version = _version(fields[0]) or (0, 0)
        where = f"the scanners environment {scanners_env}"
        problem = "" if fields[1] == "yes" else f"bandit is not installed in {where}"
        return Scanner(
            prefix=(interpreter, "-I", "-m", "bandit"),
            version=version,
            where=where,
            problem=problem,
        )
    return Scanner(
        prefix=tuple(scanner_command(python, "bandit.cli.main", "bandit", [])),
        version=LENT_VERSION,
        where="the factory's lent packages",
    )


def _version(text: str) -> tuple[int, int] | None:
    major, _, minor = text.partition(".")
    if not (major.isdigit() and minor.isdigit()):
        return None
    return int(major), int(minor)
