"""Real public projects as inputs: PyPI sdists and npm package tarballs, pinned by sha256.

Each project is fetched from its package index (an sdist ships its tests; these npm tarballs
do too), checked against the digest pinned here, cached under
`~/.cache/codefactory-tests/real-repos/archives/`, and unpacked into a fresh git repository of
one commit: the layout a user's checkout of that release has, minus what the archive leaves
out (said in `note`).

Each project carries two one-line edits: `harmless` (a comment: the gate must pass it) and
`mutation` (a behaviour change the project's own tests catch: the gate must block it), and
`pins`: packages whose installed version the project's lock or pinned requirements fix.

Used by `bench_real_repos.py` and `tests/realrepos/`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PYPI = "https://pypi.org/pypi"
NPM = "https://registry.npmjs.org"
CACHE = Path(
    os.environ.get("CODEFACTORY_REAL_REPOS_CACHE", "~/.cache/codefactory-tests/real-repos")
).expanduser()
GIT_IDENTITY = ("-c", "user.name=Real Repos", "-c", "user.email=real-repos@example.com")
GIT_DATE = "2026-01-01T00:00:00+00:00"
LOCKS = Path(__file__).resolve().parent / "real_repos_locks"


class FetchError(Exception):
    """A project could not be fetched or did not match its pinned digest (the message says
    which project, which URL, and what differed)."""


@dataclass(frozen=True, kw_only=True)
class Edit:
    """Replace the one line `old` of `path` (it must occur exactly once) with `new`."""

    path: str
    old: str
    new: str

    def apply(self, repo: Path) -> None:
        """Write the edit into `repo`'s working tree; raises ValueError when `old` does not
        occur exactly once (the project's source is not the one this edit was written for)."""
        target = repo / self.path
        text = target.read_text(encoding="utf-8")
        count = text.count(self.old)
        if count != 1:
            raise ValueError(f"{self.path}: expected {self.old!r} once, found it {count} times")
        target.write_text(text.replace(self.old, self.new), encoding="utf-8")


@dataclass(frozen=True, kw_only=True)
class RealProject:
    """One released project, pinned: where it comes from and what to do with it."""

    name: str
    version: str
    ecosystem: str
    """`PyPI` or `npm` (OSV's ecosystem names)."""
    sha256: str
    """Of the archive, hex."""
    layout: str
    """What the archive's files say about how it is installed (shown in the table)."""
    note: str
    """Where the archive's layout differs from the project's repository."""
    harmless: Edit
    mutation: Edit
    pins: tuple[tuple[str, str], ...] = ()
    """(package, version) pairs the project's lock or pinned requirements fix."""
    planted: Edit | None = None
    """Adds `pyjwt==1.5.0` (PYSEC-2017-24) where the project declares its test
    dependencies, without relocking: the gate must block it."""
    known_gap: str = ""
    """Why the factory cannot serve this project yet (printed; not counted as a wrong
    verdict): a known gap stays in the table so its figures show when it closes."""
    added_lock: tuple[str, str] | None = None
    """(path in the tree, sha256) of a lock file this benchmark adds from `LOCKS` (npm
    tarballs never ship `package-lock.json`): generated once with `npm install
    --package-lock-only --ignore-scripts` (npm 11), kept here so the install is reproducible."""

    @property
    def slug(self) -> str:
        return f"{self.name}-{self.version}"

    @property
    def archive_name(self) -> str:
        return f"{self.slug}.tgz" if self.ecosystem == "npm" else f"{self.slug}.tar.gz"


PROJECTS: tuple[RealProject, ...] = (
    RealProject(
        name="click",
        version="8.5.1",
        ecosystem="PyPI",
        sha256="9bbfada76703fd1d784b83eea012e3e8c6a001a876543ef104fa56aaaeb072b4",
        layout="uv.lock; PEP 735 groups (tests, typing, docs...); flit_core",
        note="the sdist ships uv.lock and tests, as the repository has them",
        planted=Edit(
            path="pyproject.toml",
            old='tests = [\n    "pytest",\n',
            new='tests = [\n    "pytest",\n    "pyjwt==1.5.0",\n',
        ),
        harmless=Edit(
            path="src/click/types.py",
            old='    name = "boolean"\n',
            new='    name = "boolean"  # shown in help\n',
        ),
        mutation=Edit(
            path="src/click/types.py", old='        "true": True,\n', new='        "true": False,\n'
        ),
        pins=(("pytest", "9.0.2"),),
    ),
    RealProject(
        name="iniconfig",
        version="2.3.1",
        ecosystem="PyPI",
        sha256="67f4b9c50da0dedf52af349e7749a80a9057a5031199791b906c3bb3ae878960",
        layout="uv.lock; PEP 735 group dev; setuptools-scm; tests in testing/",
        note="version from setuptools-scm: the unpacked repository has no tag",
        planted=Edit(
            path="pyproject.toml",
            old='  "pytest>=8.4.2",\n',
            new='  "pytest>=8.4.2",\n  "pyjwt==1.5.0",\n',
        ),
        harmless=Edit(
            path="src/iniconfig/__init__.py",
            old="        if name not in self.sections:\n",
            new="        if name not in self.sections:  # unknown section\n",
        ),
        mutation=Edit(
            path="src/iniconfig/__init__.py",
            old="            return default\n",
            new="            return None\n",
        ),
        pins=(("pytest", "8.4.2"),),
    ),
    RealProject(
        name="pathspec",
        version="1.1.1",
        ecosystem="PyPI",
        sha256="17db5ecd524104a120e173814c90367a96a98d07c45b2e10c2f3919fff91bf5a",
        layout="PEP 621 + PEP 735 group dev (with a marker), no lock; setup.py; tox.toml",
        note="no lock file in the repository either",
        planted=Edit(
            path="pyproject.toml",
            old='\t"pytest >=8",\n',
            new='\t"pytest >=8",\n\t"pyjwt==1.5.0",\n',
        ),
        harmless=Edit(
            path="pathspec/util.py",
            old="\t# Normalize path separators.\n",
            new="\t# Normalize path separators first.\n",
        ),
        mutation=Edit(
            path="pathspec/util.py",
            old="\t\tnorm_file = norm_file[1:]\n",
            new="\t\tnorm_file = norm_file[2:]\n",
        ),
    ),
    RealProject(
        name="humanize",
        version="4.17.0",
        ecosystem="PyPI",
        sha256="1d6a36c453dbfbb3f0b34601d2e0b4ce5d48d780305cd45714843f0068fde6ac",
        layout="PEP 621 extra `tests`, no lock; tox.ini; hatch-vcs; ruff fix = true",
        note="no lock file in the repository either",
        planted=Edit(
            path="pyproject.toml",
            old='  "pytest>=9",\n',
            new='  "pytest>=9",\n  "pyjwt==1.5.0",\n',
        ),
        harmless=Edit(
            path="src/humanize/filesize.py",
            old='    space = "" if gnu else " "\n',
            new='    space = "" if gnu else " "  # GNU style has none\n',
        ),
        mutation=Edit(
            path="src/humanize/filesize.py",
            old="    if abs_bytes == 1 and not gnu:\n",
            new="    if abs_bytes == 1 and gnu:\n",
        ),
    ),
    RealProject(
        name="cleo",
        version="2.1.0",
        ecosystem="PyPI",
        sha256="0b2c880b5d13660a7ea651001fb4acb527696c01f15c9ee650f377aa543fd523",
        layout="poetry-core; [tool.poetry.group.dev/doc]; ruff fix = true",
        note="the sdist lacks the repository's poetry.lock",
        known_gap=(
            "Poetry without a lock must resolve (`poetry lock`), which asks PyPI's per-release "
            "JSON API; this machine's index answers it with 404"
        ),
        harmless=Edit(
            path="src/cleo/_utils.py",
            old='        return "".join(self.fed)\n',
            new='        return "".join(self.fed)  # the text between tags\n',
        ),
        mutation=Edit(
            path="src/cleo/_utils.py",
            old='            return f"{math.ceil(secs / self.divisor)} {self.alias}"\n',
            new='            return f"{math.floor(secs / self.divisor)} {self.alias}"\n',
        ),
    ),
    RealProject(
        name="itsdangerous",
        version="2.2.0",
        ecosystem="PyPI",
        sha256="e0050c0b7da1eea53ffaf149c0cfbb5c6e2e2b69c4bef22c81fa6eb73e5f6173",
        layout="pinned requirements/tests.txt (pip-compile) in a subfolder; tox.ini -r",
        note="the repository of this release has the same requirements/ folder",
        planted=Edit(
            path="requirements/tests.txt",
            old="freezegun==1.4.0\n",
            new="freezegun==1.4.0\npyjwt==1.5.0\n",
        ),
        harmless=Edit(
            path="src/itsdangerous/encoding.py",
            old="        s = s.encode(encoding, errors)\n",
            new="        s = s.encode(encoding, errors)  # text to bytes\n",
        ),
        mutation=Edit(
            path="src/itsdangerous/signer.py",
            old="        return hmac.compare_digest(sig, self.get_signature(key, value))\n",
            new="        return not hmac.compare_digest(sig, self.get_signature(key, value))\n",
        ),
        pins=(("pytest", "8.1.1"), ("freezegun", "1.4.0")),
    ),
    RealProject(
        name="six",
        version="1.17.0",
        ecosystem="PyPI",
        sha256="ff70335d468e7eb6ec65b95b99d3a2836546063f63acc5171de367e834932a81",
        layout="setup.py + setup.cfg only; test_six.py at the root; no test requirements",
        note="the repository's tox.ini is not in the sdist",
        harmless=Edit(
            path="six.py",
            old='        return s.encode("latin-1")\n',
            new='        return s.encode("latin-1")  # one byte per code point\n',
        ),
        mutation=Edit(
            path="six.py",
            old='        return s.encode("latin-1")\n',
            new='        return s.encode("utf-8")\n',
        ),
    ),
    RealProject(
        name="deep-equal",
        version="1.0.1",
        ecosystem="npm",
        sha256="679226cbc8173a807e1985410f71a06092f25bea729da142d9fda15a8e085ed0",
        layout="package.json; test script `tape test/*.js`; devDependencies tape",
        note="npm tarballs never ship package-lock.json: the benchmark adds one",
        harmless=Edit(
            path="index.js",
            old="var pSlice = Array.prototype.slice;\n",
            new="var pSlice = Array.prototype.slice; // arguments to array\n",
        ),
        mutation=Edit(
            path="index.js",
            old="    return actual.getTime() === expected.getTime();\n",
            new="    return actual.getTime() !== expected.getTime();\n",
        ),
        pins=(("tape", "3.6.1"),),
        added_lock=(
            "package-lock.json",
            "93fdd21e9f95141e851ea90103be25bf2125bb6ccc63acd8ae5214c925e0fb34",
        ),
    ),
    RealProject(
        name="through",
        version="2.3.8",
        ecosystem="npm",
        sha256="16b27a8c0fb13e5727356b328d72dbbc5f20bd909252f14d19da344e9354573e",
        layout="package.json; test script a shell loop over test/*.js; 3 devDependencies",
        note="npm tarballs never ship package-lock.json: the benchmark adds one",
        harmless=Edit(
            path="index.js",
            old="var Stream = require('stream')\n",
            new="var Stream = require('stream') // the legacy base class\n",
        ),
        mutation=Edit(
            path="index.js",
            old="  write = write || function (data) { this.queue(data) }\n",
            new="  write = write || function (data) { }\n",
        ),
        pins=(("tape", "2.3.3"), ("from", "0.1.7"), ("stream-spec", "0.3.6")),
        added_lock=(
            "package-lock.json",
            "fe64c502ea97c367678b77ae47dcc3d5ec27596037bfc1eed8f11f870c778ee0",
        ),
    ),
    RealProject(
        name="isarray",
        version="1.0.0",
        ecosystem="npm",
        sha256="e23c76f14f5222e07e39d89858b61e8e33f96956de9e0df3659cbdf8db950c87",
        layout="package.json; test script `tape test.js`; devDependencies tape",
        note="npm tarballs never ship package-lock.json: the benchmark adds one",
        harmless=Edit(
            path="index.js",
            old="var toString = {}.toString;\n",
            new="var toString = {}.toString; // the [[Class]] tag\n",
        ),
        mutation=Edit(
            path="index.js",
            old="module.exports = Array.isArray || function (arr) {\n",
            new="module.exports = function (arr) { return false;\n",
        ),
        pins=(("tape", "2.13.4"),),
        added_lock=(
            "package-lock.json",
            "cdc7f2b9162324dd74aadc2327a6ec1782e963c6f23ca5b379caf8d369fb4c55",
        ),
    ),
)


def project(name: str) -> RealProject:
    """The pinned project called `name`; KeyError when there is none."""
    for candidate in PROJECTS:
        if candidate.name == name:
            return candidate
    raise KeyError(name)


def archive(item: RealProject, cache: Path = CACHE) -> Path:
    """The project's archive, from the cache or its index, checked against the pinned sha256.
    Raises FetchError when the index has no such file or its bytes differ."""
    path = cache / "archives" / item.archive_name
    if path.is_file() and _sha256(path.read_bytes()) == item.sha256:
        return path
    url = _archive_url(item)
    data = _get(url)
    digest = _sha256(data)
    if digest != item.sha256:
        raise FetchError(f"{item.slug}: {url} has sha256 {digest}, pinned {item.sha256}")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(path)
    return path


def materialise(item: RealProject, dest: Path, cache: Path = CACHE) -> Path:
    """Unpack the project's archive into `dest` (which must not exist) as a git repository of
    one commit on `main`; returns `dest`. The archive's single top folder is stripped."""
    source = archive(item, cache)
    dest.mkdir(parents=True)
    with tarfile.open(source) as tar:
        members = [m for m in tar.getmembers() if "/" in m.name.strip("/")]
        tops = {m.name.split("/", 1)[0] for m in tar.getmembers()}
        if len(tops) != 1:
            raise FetchError(f"{item.slug}: expected one top folder, found {sorted(tops)}")
        for member in members:
            member.name = member.name.split("/", 1)[1]
        tar.extractall(dest, members=members, filter="data")
    if item.added_lock is not None:
        _add_lock(item, dest)
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    env = {**os.environ, "GIT_AUTHOR_DATE": GIT_DATE, "GIT_COMMITTER_DATE": GIT_DATE}
    subprocess.run(
        ["git", "-C", str(dest), *GIT_IDENTITY, "commit", "-q", "-m", item.slug],
        check=True,
        capture_output=True,
        env=env,
    )
    return dest


def _add_lock(item: RealProject, dest: Path) -> None:
    assert item.added_lock is not None
    path, digest = item.added_lock
    data = (LOCKS / f"{item.slug}.{path}").read_bytes()
    if _sha256(data) != digest:
        raise FetchError(f"{item.slug}: {LOCKS.name}/{item.slug}.{path} is not the pinned lock")
    (dest / path).write_bytes(data)


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` with a fixed identity; returns stdout (CalledProcessError on
    failure)."""
    result = subprocess.run(
        ["git", "-C", str(repo), *GIT_IDENTITY, *args], check=True, capture_output=True, text=True
    )
    return result.stdout.strip()


def _archive_url(item: RealProject) -> str:
    if item.ecosystem == "npm":
        meta = json.loads(_get(f"{NPM}/{item.name}/{item.version}"))
        return str(meta["dist"]["tarball"])
    files = _pypi_release_files(item)
    for file in files:
        if file.get("packagetype") == "sdist" and file["digests"]["sha256"] == item.sha256:
            return str(file["url"])
    raise FetchError(f"{item.slug}: PyPI lists no sdist with sha256 {item.sha256}")


def _pypi_release_files(item: RealProject) -> list[dict[str, Any]]:
    """The release's files from PyPI's JSON API: `/pypi/<name>/<version>/json`, else the
    project's `/pypi/<name>/json` `releases` (some mirrors serve only the latter). URLs are
    made absolute (a mirror may give them relative to the API)."""
    url = f"{PYPI}/{item.name}/{item.version}/json"
    try:
        files = json.loads(_get(url))["urls"]
    except FetchError:
        url = f"{PYPI}/{item.name}/json"
        files = json.loads(_get(url))["releases"].get(item.version, [])
    return [{**f, "url": urllib.parse.urljoin(url, f["url"])} for f in files]


def _get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - https only
            return bytes(response.read())
    except (urllib.error.URLError, TimeoutError) as err:
        raise FetchError(f"could not fetch {url}: {err}") from err


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
