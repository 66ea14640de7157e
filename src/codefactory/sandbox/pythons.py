"""The CPython a project asks for, provided to its sandbox.

`PythonInterpreters.resolve` picks, in order: the host's interpreter (`sandbox.python`, the
sandbox's default) when it satisfies the request; a uv-managed CPython already installed under
`root`; else one that the factory installs there with `uv python install`, on the host, from
the configured python-build-standalone mirror or downloads list (uv checks each archive's
SHA-256). The sandbox shows `root` read-only at `SANDBOX_PYTHONS` in every phase, so a
virtualenv built from such an interpreter works in setup, engine and check alike. No other
Python is ever used: the host's other installations (pyenv, /usr/local) are not visible in
the sandbox.

`scanner_steps` builds, in the setup phase, a virtualenv of the factory's own bandit with the
project's interpreter: bandit parses with the `ast` of the Python that runs it, so a 3.12
project's PEP 695 generics need a 3.12 bandit.
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import os
import platform
import re
import stat
import subprocess  # nosec B404 - runs the factory's own uv and the host's Python, by path
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from codefactory.projects.model import SetupStep
from codefactory.sandbox.errors import SetupFailed
from codefactory.sandbox.layout import SCANNERS_ENV, UV
from codefactory.sandbox.python_request import PythonRequest, best_admitted, parse_request
from codefactory.sandbox.tools import sandbox_tools

SANDBOX_PYTHONS = "/opt/codefactory/python"
"""Where every sandbox shows the installed interpreters (`root`), read-only."""
_MANAGED = re.compile(r"cpython-(?P<version>3\.\d+\.\d+)-linux-(?P<arch>[a-z0-9_]+)-gnu")
"""A uv-managed CPython's folder (`cpython-3.12.1-linux-x86_64-gnu`). uv's minor-version
links (`cpython-3.12-...`) point at host paths and are never used; free-threaded and debug
builds (`+freethreaded`) are not provided."""
SETTINGS_HINT = (
    "set `sandbox.python_downloads_json_url` (CODEFACTORY_SANDBOX__PYTHON_DOWNLOADS_JSON_URL) "
    "or `sandbox.python_install_mirror` (CODEFACTORY_SANDBOX__PYTHON_INSTALL_MIRROR) to a "
    "source of python-build-standalone archives, or ask for a Python the host has"
)


@dataclass(frozen=True, kw_only=True)
class Interpreter:
    """One CPython the sandbox can run."""

    version: str
    """Its full version, `3.12.1`."""
    sandbox_path: str
    """The interpreter as every sandbox phase sees it, e.g.
    `/opt/codefactory/python/cpython-3.12.1-linux-x86_64-gnu/bin/python3.12`."""

    @property
    def minor(self) -> str:
        """`3.12`: what decides whether code parses and compiled packages load."""
        return ".".join(self.version.split(".")[:2])


class PythonUnavailable(SetupFailed):
    """The Python a project asks for cannot be provided; the message says which Python,
    which file asked, what was tried and which setting to set."""

    def __init__(self, *, wanted: str, source: str, tried: str) -> None:
        self.wanted = wanted
        self.source = source
        self.tried = tried
        super().__init__(
            f"Python {wanted!r} (asked by {source or 'the repository'}) is not available to the "
            f"sandbox: {tried}; {SETTINGS_HINT}"
        )


class PythonInterpreters:
    """The interpreters of one factory: the host's and those installed under `root`."""

    def __init__(
        self,
        root: Path,
        *,
        host_python: str,
        downloads_json_url: str | None,
        mirror: str | None,
        install_timeout_s: float = 600.0,
    ) -> None:
        """`root`: the host folder of uv-managed installs (`UV_PYTHON_INSTALL_DIR`), created
        world-readable; `host_python`: the sandbox's default interpreter, by its sandbox path
        (the host's own, e.g. `/usr/bin/python3`); `downloads_json_url`, `mirror`: uv's
        `--python-downloads-json-url` and `--mirror`, None when not configured."""
        self.root = root
        self.host_python = host_python
        self.downloads_json_url = downloads_json_url or None
        self.mirror = mirror or None
        self.install_timeout_s = install_timeout_s
        self._host: Interpreter | None = None
        self._lock = threading.Lock()

    def host(self) -> Interpreter:
        """The host's interpreter and its version (asked of it once)."""
        with self._lock:
            if self._host is None:
                self._host = Interpreter(
                    version=_version_of(self.host_python), sandbox_path=self.host_python
                )
            return self._host

    def installed(self) -> list[Interpreter]:
        """The uv-managed CPythons under `root` for this machine, read from their folders
        (nothing is run), oldest first."""
        found = []
        for entry in sorted(self.root.iterdir()) if self.root.is_dir() else []:
            matched = _MANAGED.fullmatch(entry.name)
            if matched is None or matched["arch"] != platform.machine() or entry.is_symlink():
                continue
            minor = ".".join(matched["version"].split(".")[:2])
            binary = entry / "bin" / f"python{minor}"
            if binary.is_file() and os.access(binary, os.X_OK):
                found.append(
                    Interpreter(
                        version=matched["version"],
                        sandbox_path=f"{SANDBOX_PYTHONS}/{entry.name}/bin/python{minor}",
                    )
                )
        return sorted(found, key=lambda i: tuple(int(p) for p in i.version.split(".")))

    def resolve(self, wanted: str | None, *, source: str) -> Interpreter:
        """The interpreter for `wanted` (a version like `3.12` or a PEP 440 specifier like
        `>=3.12`; None: the host's), asked for by `source` (`.python-version`,
        `pyproject.toml requires-python`). Installs it under `root` when neither the host's
        nor an installed one satisfies it, once however many runs ask at the same time.
        `PythonUnavailable` when the request cannot be read, no source is configured, or
        the download or install fails."""
        host = self.host()
        if wanted is None or not wanted.strip():
            return host
        try:
            request = parse_request(wanted)
        except ValueError as err:
            raise PythonUnavailable(wanted=wanted, source=source, tried=str(err)) from None
        if request.admits(host.version):
            return host
        found = self._installed_for(request)
        if found is not None:
            return found
        if self.downloads_json_url is None and self.mirror is None:
            raise PythonUnavailable(
                wanted=wanted,
                source=source,
                tried=self._not_found(host)
                + "; no Python download source is configured, so none was installed",
            )
        with self._install_lock():
            found = self._installed_for(request)  # another run may have installed it
            if found is None:
                self._install(request, wanted=wanted, source=source)
                found = self._installed_for(request)
        if found is None:
            raise PythonUnavailable(
                wanted=wanted,
                source=source,
                tried=f"{self._not_found(host)}; `uv python install {request.uv_request}` from "
                f"{self._download_source()} installed nothing that satisfies it",
            )
        return found

    def _installed_for(self, request: PythonRequest) -> Interpreter | None:
        installed = {i.version: i for i in self.installed()}
        best = best_admitted(request, list(installed))
        return installed[best] if best is not None else None

    def _not_found(self, host: Interpreter) -> str:
        versions = ", ".join(i.version for i in self.installed()) or "none"
        return (
            f"the host's {self.host_python} is {host.version} and the Pythons installed under "
            f"{self.root} ({versions}) do not satisfy it"
        )

    def _download_source(self) -> str:
        if self.downloads_json_url is not None:
            return f"the downloads list {self.downloads_json_url}"
        return f"the mirror {self.mirror}"

    @contextmanager
    def _install_lock(self) -> Iterator[None]:
        """An exclusive lock on `root` across threads and processes (flock(2) is held per
        open file, so two opens in one process exclude each other too)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)  # the sandbox's unprivileged user reads it through a bind
        fd = os.open(self.root / ".codefactory-install.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _install(self, request: PythonRequest, *, wanted: str, source: str) -> None:
        argv = [str(sandbox_tools()["uv"]), "python", "install", "--no-config", "--no-bin",
                "--native-tls", "--install-dir", str(self.root)]  # fmt: skip
        if self.downloads_json_url is not None:
            argv += ["--python-downloads-json-url", self.downloads_json_url]
        if self.mirror is not None:
            argv += ["--mirror", self.mirror]
        argv.append(request.uv_request)
        try:
            done = subprocess.run(  # nosec B603 - the factory's uv, no shell
                argv, capture_output=True, text=True, timeout=self.install_timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            detail = f"it did not finish within {self.install_timeout_s:g}s"
        else:
            if done.returncode == 0:
                _share(self.root)
                return
            detail = (done.stderr.strip() or done.stdout.strip())[-2000:]
        raise PythonUnavailable(
            wanted=wanted,
            source=source,
            tried=f"{self._not_found(self.host())}; `uv python install {request.uv_request}` "
            f"from {self._download_source()} failed: {detail}",
        )


def scanner_steps(interpreter: Interpreter) -> tuple[SetupStep, ...]:
    """Setup-phase steps that create `SCANNERS_ENV` with `interpreter` and install the
    factory's exact bandit version into it from the package index. Run them after the
    repository's own environment exists (creating `/env` anew would remove it). uv reads no
    configuration of the repository's (`--no-config`): the scanner is the factory's."""
    bandit = importlib.metadata.version("bandit")
    why = f"the factory's scanners for Python {interpreter.minor} (bandit parses with it)"
    venv = (UV, "venv", "--quiet", "--no-config", "--clear", "--python",
            interpreter.sandbox_path, SCANNERS_ENV)  # fmt: skip
    install = (UV, "pip", "install", "--quiet", "--no-config", "--python",
               f"{SCANNERS_ENV}/bin/python", f"bandit=={bandit}")  # fmt: skip
    return SetupStep(argv=venv, why=why), SetupStep(argv=install, why=why)


def _share(root: Path) -> None:
    """Make the installs under `root` readable (and their folders and programs runnable) by
    everyone: the sandbox's unprivileged users, whatever the factory's umask was. Links are
    never followed."""
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = os.path.join(folder, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                continue
            wanted = mode | stat.S_IRGRP | stat.S_IROTH
            if stat.S_ISDIR(mode) or mode & stat.S_IXUSR:
                wanted |= stat.S_IXGRP | stat.S_IXOTH
            if wanted != mode:
                os.chmod(path, stat.S_IMODE(wanted))


def _version_of(python: str) -> str:
    """The full version of the host interpreter `python` (`3.11.2`)."""
    argv = [python, "-I", "-c", "import platform; print(platform.python_version())"]
    try:
        done = subprocess.run(  # nosec B603 - the host's own interpreter, no shell
            argv, capture_output=True, text=True, timeout=60, check=True
        )
    except (OSError, subprocess.SubprocessError) as err:
        detail = f"the sandbox's Python {python} cannot report its version: {err}"
        raise SetupFailed(detail) from err
    return done.stdout.strip()
