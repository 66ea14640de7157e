"""What a project's lock file says must be installed: name → version, read from the file as
its tool writes it (uv.lock, pip-compile output, package-lock.json v3)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from benchmarks.factory_cli import canonical

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


def uv_lock(path: Path) -> dict[str, str]:
    """Every `[[package]]` of a uv.lock: PEP 503 name → version (the editable project too)."""
    packages = tomllib.loads(path.read_text(encoding="utf-8"))["package"]
    return {canonical(p["name"]): p["version"] for p in packages if "version" in p}


def pinned_requirements(path: Path) -> dict[str, str]:
    """Every `name==version` line of a compiled requirements file (pip-compile's output)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return {canonical(m[1]): m[2] for line in lines if (m := _PIN.match(line.strip()))}


def package_lock(path: Path) -> dict[str, str]:
    """Every installed package of a package-lock.json (v2/v3 `packages`): its path under
    `node_modules` (`a`, `a/node_modules/b`) → version; the root entry left out."""
    packages = json.loads(path.read_text(encoding="utf-8"))["packages"]
    prefix = "node_modules/"
    return {key[len(prefix) :]: entry["version"] for key, entry in packages.items() if key}
