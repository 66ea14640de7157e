"""Locked Python installs: `uv.lock`, `poetry.lock` and `Pipfile.lock`, each installed as its
lock says (the reasons for each route are in `projects/python.py`'s docstring)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from codefactory.projects.model import FileSource, SetupStep
from codefactory.projects.requirements_files import normalise
from codefactory.sandbox.layout import ENV_DIR, SH, UV, system_tool

ENV_PYTHON = f"{ENV_DIR}/bin/python"

_POETRY_TOOLS = ("poetry==2.2.1", "poetry-plugin-export==1.10.1")
"""Poetry and its exporter, pinned: the plan, and so the image key, names them."""
_POETRY_SCRIPT = (
    '"$0" venv --quiet --python "$1" /tmp/poetry && '
    '"$0" pip install --quiet --python /tmp/poetry/bin/python "$2" "$3" && '
    "export POETRY_VIRTUALENVS_CREATE=false POETRY_CACHE_DIR=/tmp/poetry-cache "
    "POETRY_NO_INTERACTION=1 REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt && "
    "{lock}/tmp/poetry/bin/poetry export --no-ansi --all-groups --all-extras "
    "--format requirements.txt --output /tmp/poetry-locked.txt && "
    '"$0" pip install --python ' + ENV_PYTHON + " -r /tmp/poetry-locked.txt{root}"
)
"""Poetry in a throwaway virtualenv under the command's own `/tmp`: its exporter writes the
lock's pins for every group and extra, with Poetry's markers and the lock's hashes (which uv
verifies); uv installs them into `/env`, then the project itself, editable, without its
dependencies. The environment variables win over a committed poetry.toml."""
_PIPFILE_SCRIPT = (
    'printf "%s\\n" "$@" > /tmp/Pipfile.lock.txt && '
    'exec "$0" pip install --python ' + ENV_PYTHON + " {hashes}-r /tmp/Pipfile.lock.txt"
)


@dataclass
class Plan:
    """One layout's setup steps, the files that decide them, whether they install pytest."""

    layout: str
    steps: list[SetupStep] = field(default_factory=list)
    inputs: set[str] = field(default_factory=set)
    installs_pytest: bool = False
    problems: list[str] = field(default_factory=list)


def uv_plan(files: FileSource, paths: list[str]) -> Plan:
    """`uv sync --locked` of every group and extra into `/env`; inputs: the lock, every
    pyproject.toml (workspace members decide the lock's check too) and uv.toml."""
    lock = files.read("uv.lock") or b""
    argv = (system_tool("env"), f"UV_PROJECT_ENVIRONMENT={ENV_DIR}", UV, "sync", "--locked",
            "--all-groups", "--all-extras", "--python", ENV_PYTHON)  # fmt: skip
    plan = Plan(
        layout="uv",
        steps=[SetupStep(argv=argv, why="uv.lock: the locked install of every group and extra")],
        inputs={"uv.lock", *(p for p in paths if p.endswith("pyproject.toml"))},
        installs_pytest=lock_names(lock, rb'^name = "([^"]+)"'),
    )
    plan.inputs |= {p for p in ("uv.toml",) if p in paths}
    return plan


def poetry_plan(files: FileSource, present: set[str], pyproject: dict[str, object] | None) -> Plan:
    """Poetry's export of the lock (locking first when there is none), installed by uv."""
    locked = "poetry.lock" in present
    script = _POETRY_SCRIPT.format(
        lock="" if locked else "/tmp/poetry/bin/poetry lock --no-ansi && ",
        root=' && "$0" pip install --python ' + ENV_PYTHON + " --no-deps -e ."
        if _poetry_package(pyproject)
        else "",
    )
    argv = (SH, "-c", script, UV, system_tool("python3"), *_POETRY_TOOLS)
    why = (
        "poetry.lock: the locked install of every group and extra"
        if locked
        else ("pyproject.toml [tool.poetry] without poetry.lock: Poetry locks every group first")
    )
    plan = Plan(layout="poetry", steps=[SetupStep(argv=argv, why=why)])
    plan.inputs = {p for p in ("poetry.lock", "pyproject.toml", "poetry.toml") if p in present}
    if locked:
        plan.installs_pytest = lock_names(files.read("poetry.lock") or b"", rb'^name = "([^"]+)"')
    else:
        plan.installs_pytest = b"pytest" in (files.read("pyproject.toml") or b"")
    return plan


def _poetry_package(pyproject: dict[str, object] | None) -> bool:
    """Whether Poetry would install the project itself: it has a build backend and is not in
    `package-mode = false`."""
    tool = (pyproject or {}).get("tool", {})
    poetry = tool.get("poetry", {}) if isinstance(tool, dict) else {}
    if isinstance(poetry, dict) and poetry.get("package-mode") is False:
        return False
    return bool((pyproject or {}).get("build-system"))


def pipfile_plan(files: FileSource) -> Plan:
    """Pipfile.lock's default and develop pins, hash-checked, then its path and VCS entries."""
    plan = Plan(layout="pipfile", inputs={"Pipfile.lock"})
    try:
        lock = json.loads(files.read("Pipfile.lock") or b"")
    except ValueError as err:
        plan.problems.append(f"Pipfile.lock is not JSON: {err}")
        return plan
    except (RecursionError, MemoryError) as err:
        kind = type(err).__name__
        plan.problems.append(f"Pipfile.lock is nested too deeply (or too large) to read: {kind}")
        return plan
    if not isinstance(lock, dict):
        plan.problems.append("Pipfile.lock is not a JSON object")
        return plan
    hashed, other, index = _pipfile_lines(lock)
    plan.installs_pytest = any(is_pytest(line.split("=", 1)[0]) for line in hashed + other)
    if hashed:
        script = _PIPFILE_SCRIPT.format(hashes="--require-hashes " + index)
        plan.steps.append(
            SetupStep(
                argv=(SH, "-c", script, UV, *hashed),
                why="Pipfile.lock: its default and develop pins, with their hashes",
            )
        )
    if other:
        plan.steps.append(
            SetupStep(
                argv=(UV, "pip", "install", "--python", ENV_PYTHON, *other),
                why="Pipfile.lock: its editable, path and VCS entries",
            )
        )
    return plan


def _pipfile_lines(lock: dict[str, object]) -> tuple[list[str], list[str], str]:
    hashed: list[str] = []
    other: list[str] = []
    for section in ("default", "develop"):
        entries = lock.get(section, {})
        for name, entry in entries.items() if isinstance(entries, dict) else ():
            if not isinstance(entry, dict):
                continue
            marker = f"; {entry['markers']}" if isinstance(entry.get("markers"), str) else ""
            extras = f"[{','.join(entry['extras'])}]" if entry.get("extras") else ""
            if isinstance(entry.get("version"), str) and entry.get("hashes"):
                hashes = " ".join(f"--hash={h}" for h in entry["hashes"])
                hashed.append(f"{name}{extras}{entry['version']}{marker} {hashes}")
            elif "path" in entry:
                flag = ["-e"] if entry.get("editable") else []
                other += [*flag, f"{entry['path']}{extras}"]
            elif "git" in entry:
                ref = f"@{entry['ref']}" if entry.get("ref") else ""
                other.append(f"{name}{extras} @ git+{entry['git']}{ref}{marker}")
            elif isinstance(entry.get("version"), str):
                other.append(f"{name}{extras}{entry['version']}{marker}")
    meta = lock.get("_meta", {})
    sources = meta.get("sources", []) if isinstance(meta, dict) else []
    urls = [s["url"] for s in sources if isinstance(s, dict) and isinstance(s.get("url"), str)]
    index = ""
    if urls:
        index = f"--index-url {urls[0]} " + "".join(f"--extra-index-url {u} " for u in urls[1:])
    return hashed, other, index


def is_pytest(name: str) -> bool:
    """Whether a (PEP 503) name is pytest or a pytest plugin, which brings pytest."""
    name = normalise(name.strip())
    return name == "pytest" or name.startswith("pytest-")


def lock_names(lock: bytes, pattern: bytes) -> bool:
    """Whether a lock's package names (the `pattern`'s first group) include pytest."""
    return any(is_pytest(m.decode()) for m in re.findall(pattern, lock, re.M))
