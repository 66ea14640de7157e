"""How the scanners installed with the factory run inside the sandbox, with no network.

bandit, detect-secrets and coverage are Python packages of the factory's own environment,
not of the repository's `/env`. The sandbox lends the factory's site-packages read-only at
`LENT_PACKAGES` (`sandbox/tools.py`), and a scanner runs with the sandbox's interpreter
(`SandboxSettings.python`, Debian's `/usr/bin/python3` by default) in isolated mode
(`-I -S`: no user or system site-packages, no environment variables, not even the workspace
on `sys.path`, so a repository file named `yaml.py` cannot shadow a scanner's import), with
the lent folder appended to `sys.path`. The interpreter must be the factory's Python minor
version: the bootstrap refuses a mismatch with a clear message rather than half-import
compiled modules.

Coverage is different: it must run the repository's own pytest with the repository's own
packages. There the lent folder is never put on `sys.path`; a meta-path finder serves only
the `coverage` package from it, so a test that imports a package missing from `/env` still
fails as it would in the repository's CI.
"""

from __future__ import annotations

import sys

from codefactory.sandbox.layout import TOOLS_DIR
from codefactory.sandbox.tools import PYTHON_PACKAGES

LENT_PACKAGES = f"{TOOLS_DIR}/{PYTHON_PACKAGES}"
"""Where the factory's site-packages appear inside the sandbox."""
LENT_VERSION = sys.version_info[:2]
"""The Python minor version the lent packages were installed for."""
# A scanner that cannot start exits with this code and one line on stderr.
CANNOT_START = 97

_GUARD = (
    "import sys\n"
    f"if sys.version_info[:2] != {LENT_VERSION!r}:\n"
    "    sys.stderr.write('the lent scanners need Python "
    f"{LENT_VERSION[0]}.{LENT_VERSION[1]}, the sandbox runs %d.%d\\n' % sys.version_info[:2])\n"
    f"    sys.exit({CANNOT_START})\n"
)


def scanner_command(python: str, module: str, program: str, args: list[str]) -> list[str]:
    """Run `module.main()` of a lent scanner as `program args...` in isolated mode."""
    bootstrap = (
        _GUARD
        + f"sys.path.append({LENT_PACKAGES!r})\n"
        + f"sys.argv[0] = {program!r}\n"
        + "try:\n"
        + f"    from {module} import main\n"
        + "except ImportError as exc:\n"
        + "    sys.stderr.write(f'cannot import the scanner: {exc}\\n')\n"
        + f"    sys.exit({CANNOT_START})\n"
        + "sys.exit(main())\n"
    )
    return [python, "-I", "-S", "-c", bootstrap, *args]


COVERAGE_FINDER = (
    "import importlib.machinery as _machinery\n"
    "import sys as _sys\n"
    "class _LentCoverage:\n"
    '    """Serves only the `coverage` package from the lent folder."""\n'
    "    @classmethod\n"
    "    def find_spec(cls, name, path=None, target=None):\n"
    "        if name.partition('.')[0] != 'coverage':\n"
    "            return None\n"
    f"        return _machinery.PathFinder.find_spec(name, path or [{LENT_PACKAGES!r}])\n"
    "_sys.meta_path.append(_LentCoverage)\n"
)
"""Python source that makes `import coverage` work with the repository's interpreter."""
