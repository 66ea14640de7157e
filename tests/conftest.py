"""Shared fixtures: real git repositories and paths to the shared real-world fixture data."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.directory_helpers import DIRECTORY_ENV, standard_directory
from tests.egress_upstream import upstream  # noqa: F401 - a fixture shared by egress tests
from tests.oidc_helpers import oidc_provider  # noqa: F401 - the session's OIDC provider
from tests.postgres_store import (
    DATABASE_URL_ENV,
    postgres_databases,  # noqa: F401 - the session's PostgreSQL databases
    selected,
    sqlite_template,  # noqa: F401 - new SQLite stores: the template's copy
    uses_store,
)


def _shared_fixtures() -> Path:
    """`../shared/fixtures` next to the clone, else the workplace's copy (CI clones elsewhere)."""
    candidates = [
        Path(os.environ.get("CODEFACTORY_SHARED_FIXTURES", "/nonexistent")),
        Path(__file__).resolve().parents[2] / "shared" / "fixtures",
        Path("/work/shared/fixtures"),
    ]
    return next((c for c in candidates if c.is_dir()), candidates[1])


SHARED_FIXTURES = _shared_fixtures()

ADVISORY_AGE_ENV = "CODEFACTORY_VERIFY__ADVISORIES_MAX_AGE_DAYS"
# Tests not about advisory freshness judge with the shipped advisories, which were never
# synced and so count as stale by default (issue 10, item 4); the tests about freshness pass
# `max_age_days` to `ScaCheck` or set `verify.advisories_max_age_days` themselves.
os.environ.setdefault(ADVISORY_AGE_ENV, "none")


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` with a fixed identity; returns stdout."""
    return subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            *args,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


SAMPLE_SERVICE = (
    Path(__file__).resolve().parents[1] / "src/codefactory/demo_template/sample-service"
)


def sample_service(path: Path, **replace: str) -> Path:
    """A git repository at `path` holding the demo's sample service, with `replace` (a path
    → content map) written over it."""
    files = {
        str(p.relative_to(SAMPLE_SERVICE)): p.read_text()
        for p in SAMPLE_SERVICE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    make_repo(path, files | replace)
    return path


def make_repo(path: Path, files: dict[str, str]) -> str:
    """Create a git repository at `path` holding `files`; returns the commit id."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    for name, text in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return git(path, "rev-parse", "HEAD")


@pytest.fixture(scope="session", autouse=True)
def people_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory of people every factory of the session reads unless a test says
    otherwise (`tests/directory_helpers.py`): the senders of the recorded deliveries and
    this OS account (the CLI's sponsor), kept outside every data folder."""
    path = standard_directory(tmp_path_factory.mktemp("people"))
    os.environ.setdefault(DIRECTORY_ENV, str(path))
    return Path(os.environ[DIRECTORY_ENV])


@pytest.fixture
def osv_pypi_vulns() -> Path:
    """The real PyPA advisory database (OSV schema), shipped in ../shared/fixtures."""
    folder = SHARED_FIXTURES / "osv-pypi" / "vulns"
    if not folder.is_dir():
        pytest.skip(f"shared fixture data missing: {folder}")
    return folder


@pytest.fixture
def bwrap_available() -> None:
    """Skip (with the reason) where bubblewrap is missing; `make test` installs it."""
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed (make test installs it)")


@pytest.fixture(scope="session")
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One package cache for the whole session: each setup phase downloads a package once."""
    return tmp_path_factory.mktemp("uv-cache")


def data_dir_sharing_cache(data_dir: Path, uv_cache: Path) -> Path:
    """A data folder whose package cache is the session's shared one; made 0700 as the factory
    makes its own (a looser one is tightened with a notice on stderr)."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    (data_dir / "cache").symlink_to(uv_cache, target_is_directory=True)
    return data_dir


def asgi_get(app: Any, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """GET `path` from an ASGI app in-process (httpx.ASGITransport), no socket; the host is
    `localhost`, one the app trusts by default."""

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            return await client.get(path, headers=headers)

    return asyncio.run(call())


STORE_DATABASE = selected()
"""`CODEFACTORY_TEST_DATABASE`: `sqlite` (the default) or `postgresql` (tests/postgres_store.py)."""


LONG_FIRST = ("tests/acceptance/", "tests/realrepos/")
"""Where the long tests are (whole runs through the CLI, real projects, the chaos run): they
are collected first, so under pytest-xdist no worker starts one while the other runs out of
work at the end of the suite."""


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark `store` every test that uses the factory's store (tests/postgres_store.py); put
    the long tests first (`LONG_FIRST`, a stable sort: the same order on every worker)."""
    for item in items:
        if uses_store(item):
            item.add_marker(pytest.mark.store)
    items.sort(key=lambda item: 0 if item.nodeid.startswith(LONG_FIRST) else 1)


@pytest.fixture(autouse=True)
def store_database(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Under CODEFACTORY_TEST_DATABASE=postgresql, a `store` test's factory (in-process and
    every `codefactory` it spawns) opens a fresh PostgreSQL database of its own through
    CODEFACTORY_DATABASE_URL, dropped afterwards; otherwise nothing changes."""
    if STORE_DATABASE != "postgresql" or request.node.get_closest_marker("store") is None:
        yield None
        return
    databases = request.getfixturevalue("postgres_databases")
    url = databases.create()
    monkeypatch.setenv(DATABASE_URL_ENV, url)
    yield url
    databases.drop(url)  # now: its server connections end with it (max_connections)


@pytest.fixture
def another_store(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[], None]]:
    """A call that gives the factories the test builds from then on a store of their own: on
    PostgreSQL, CODEFACTORY_DATABASE_URL moves to another fresh database (dropped afterwards);
    on SQLite each data folder has its own file already, so nothing changes. For a test whose
    second factory, in another data folder, must not share the first one's store."""
    made: list[str] = []

    def switch() -> None:
        if STORE_DATABASE == "postgresql":
            made.append(request.getfixturevalue("postgres_databases").create())
            monkeypatch.setenv(DATABASE_URL_ENV, made[-1])

    yield switch
    for url in made:
        request.getfixturevalue("postgres_databases").drop_later(url)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "store: uses the factory's store (marked from the test's source, "
        "tests/postgres_store.py); `make test` runs these on PostgreSQL as well",
    )
    config.addinivalue_line(
        "markers",
        "engines_cli: runs real agent CLIs from engine images built once into "
        "~/.cache/codefactory-tests (slow the first time); CI runs them",
    )
    config.addinivalue_line(
        "markers",
        "real_repos: sets up, verifies and scans real public projects (sdists from PyPI, "
        "packages from npm) cached in ~/.cache/codefactory-tests; CI runs them",
    )
