"""Engine images: each agent CLI installed once into a cached, content-addressed folder.

    <cache_dir>/engine-images/<name>-<version>-<digest>/
        .complete        written last, before the folder takes its name (atomic rename)
        manifest.json    what was installed: versions, and for npm the lock file's integrity
        node_modules/    (npm) `npm install --prefix ... --ignore-scripts PACKAGE@VERSION`
        venv/            (python) a relocatable virtualenv made with uv

The build is a harness step on the host, with network to the package registries only (the
engine's supply, never the repository's environment); runs mount the folder read-only into
their sandbox (`Workspace.exec(mounts=...)`). npm 11 refuses install scripts it was not told
to allow; these CLIs run without them (their native binaries come as optional packages).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from codefactory.engines.cli.errors import ImageBuildFailed
from codefactory.sandbox.limits import Limits
from codefactory.sandbox.supervise import supervise

IMAGES = "engine-images"
BUILDER = 2
"""The build method's version: part of every image's key, so a changed method rebuilds."""
MARKER = ".complete"
MANIFEST = "manifest.json"
NODE = "/usr/bin/node"
"""The host's Node.js: it runs the npm CLIs inside the sandbox too (`/usr` is bound)."""
SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"
HOST_PYTHON = "/usr/bin/python3"
"""The interpreter of the Python CLIs' virtualenvs: inside the sandbox at the same path."""


@dataclass(frozen=True, kw_only=True)
class ImageRecipe:
    """What one engine image holds: a package at an exact version, and extra pins."""

    name: str
    """The CLI's short name (`codex`, `claude-code`, `mini-swe-agent`)."""
    kind: Literal["npm", "python"]
    package: str
    version: str
    pins: tuple[str, ...] = ()
    """Extra requirements installed with it (`litellm==1.110.2`): a transitive dependency
    held to a known version."""
    entry: tuple[str, ...] = ()
    """Paths inside the image that must exist after the build (a native binary)."""

    @property
    def key(self) -> str:
        """`<name>-<version>-<12 hex digits>`: the digest covers the whole recipe."""
        shape = json.dumps(
            [BUILDER, self.kind, self.package, self.version, list(self.pins), list(self.entry)]
        )
        return f"{self.name}-{self.version}-{hashlib.sha256(shape.encode()).hexdigest()[:12]}"


@dataclass(frozen=True, kw_only=True)
class EngineImage:
    """A built image on the host."""

    recipe: ImageRecipe
    root: Path
    manifest: Mapping[str, Any] = field(default_factory=dict)


def build_image(
    recipe: ImageRecipe, cache_dir: Path, *, timeout_s: float = 1200.0, home: Path | None = None
) -> EngineImage:
    """The recipe's image under `cache_dir`, built now unless a complete one is there.
    Concurrent builders of one recipe wait for each other (a lock file); a half-built folder
    never takes the image's name. `home` is the host folder whose registry configuration
    and package cache the build uses (default: this user's). `ImageBuildFailed` says why."""
    images = cache_dir / IMAGES
    images.mkdir(parents=True, exist_ok=True)
    folder = images / recipe.key
    if (folder / MARKER).is_file():
        return _load(recipe, folder)
    with _locked(images / f".{recipe.key}.lock"):
        if (folder / MARKER).is_file():
            return _load(recipe, folder)
        if folder.exists():
            shutil.rmtree(folder)  # a folder of an older layout; never a half-built one
        scratch = Path(tempfile.mkdtemp(prefix=f".{recipe.key}.", dir=images))
        try:
            manifest = _install(recipe, scratch, timeout_s, home or Path.home())
            (scratch / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
            _open_to_all(scratch)
            (scratch / MARKER).write_text(manifest["built_at"] + "\n")
            scratch.rename(folder)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
    return _load(recipe, folder)


def _load(recipe: ImageRecipe, folder: Path) -> EngineImage:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as err:
        raise ImageBuildFailed(recipe.name, f"{folder} has no readable manifest: {err}") from err
    return EngineImage(recipe=recipe, root=folder, manifest=manifest)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _install(recipe: ImageRecipe, root: Path, timeout_s: float, home: Path) -> dict[str, Any]:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}
    env["UV_LINK_MODE"] = "copy"  # an image shares no inode with the package cache
    if Path(SYSTEM_CA).is_file():  # a bank's egress proxy re-signs TLS: trust the system store
        env |= {"NODE_EXTRA_CA_CERTS": SYSTEM_CA, "SSL_CERT_FILE": SYSTEM_CA, "UV_NATIVE_TLS": "1"}
    if recipe.kind == "npm":
        manifest = _install_npm(recipe, root, env, timeout_s)
    else:
        manifest = _install_python(recipe, root, env, timeout_s)
    missing = [path for path in recipe.entry if not (root / path).exists()]
    if missing:
        raise ImageBuildFailed(
            recipe.name,
            f"the install left no {', '.join(missing)} (a native package for this platform "
            "was not installed)",
        )
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    return manifest | {
        "name": recipe.name,
        "package": recipe.package,
        "version": recipe.version,
        "kind": recipe.kind,
        "pins": list(recipe.pins),
        "key": recipe.key,
        "size_bytes": size,
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _install_npm(
    recipe: ImageRecipe, root: Path, env: Mapping[str, str], timeout_s: float
) -> dict[str, Any]:
    _run(
        recipe,
        ["/usr/bin/npm", "install", "--prefix", str(root), "--no-audit", "--no-fund",
         "--ignore-scripts", f"{recipe.package}@{recipe.version}", *recipe.pins],
        env, timeout_s,
    )  # fmt: skip
    try:
        lock = json.loads((root / "package-lock.json").read_text())
    except (OSError, ValueError) as err:
        detail = f"npm left no readable package-lock.json: {err}"
        raise ImageBuildFailed(recipe.name, detail) from err
    packages: dict[str, Any] = lock.get("packages", {})
    installed = {
        path.removeprefix("node_modules/"): {
            "version": entry.get("version", ""),
            "integrity": entry.get("integrity", ""),
        }
        for path, entry in sorted(packages.items())
        if path.startswith("node_modules/") and (root / path).is_dir()  # other platforms' not
    }
    node = _run(recipe, [NODE, "--version"], env, 30.0).strip()
    return {"runtime": f"node {node}", "installed": installed}


def _install_python(
    recipe: ImageRecipe, root: Path, env: Mapping[str, str], timeout_s: float
) -> dict[str, Any]:
    uv = [sys.executable, "-m", "uv"]
    venv = root / "venv"
    _run(recipe, [*uv, "venv", "--quiet", "--relocatable", "--python", HOST_PYTHON, str(venv)],
         env, timeout_s)  # fmt: skip
    python = str(venv / "bin" / "python")
    requirements = [f"{recipe.package}=={recipe.version}", *recipe.pins]
    _run(recipe, [*uv, "pip", "install", "--quiet", "--python", python, *requirements],
         env, timeout_s)  # fmt: skip
    frozen = _run(recipe, [*uv, "pip", "freeze", "--python", python], env, 120.0)
    installed = {
        name: {"version": version}
        for name, _, version in (line.partition("==") for line in frozen.splitlines())
        if version
    }
    version = _run(recipe, [python, "--version"], env, 30.0).strip()
    return {"runtime": version.lower(), "installed": installed}


def _run(recipe: ImageRecipe, argv: Sequence[str], env: Mapping[str, str], timeout_s: float) -> str:
    """One host build command, supervised (`sandbox.supervise`): its stdout, or the error."""
    limits = Limits(wall_s=timeout_s, cpu_s=timeout_s * 4, memory_bytes=8 << 30,
                    output_bytes=64 << 20, file_bytes=2 << 30)  # fmt: skip
    outcome = supervise(argv, env=env, stdin=None, limits=limits)
    if outcome.exit_code != 0 or outcome.limit_hit is not None:
        why = f"the {outcome.limit_hit} limit" if outcome.limit_hit else f"exit {outcome.exit_code}"
        tail = outcome.stderr.decode("utf-8", "replace").strip()[-1500:]
        raise ImageBuildFailed(recipe.name, f"`{' '.join(argv[:4])} ...` failed ({why}): {tail}")
    return outcome.stdout.decode("utf-8", "replace")


def _open_to_all(root: Path) -> None:
    """Readable (and folders searchable) by the sandbox's unprivileged user; never writable."""
    for folder, _dirs, files in os.walk(root):
        os.chmod(folder, 0o755)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                mode = os.lstat(path).st_mode
                os.chmod(path, (mode & 0o755) | 0o444 | (0o111 if mode & 0o100 else 0))
