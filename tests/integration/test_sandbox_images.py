"""Pre-warmed images: built once per repository and dependency set, reused by every run,
invalidated by a dependency edit, garbage-collected when stale and unused."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from codefactory.sandbox.bubblewrap import BubblewrapSandbox, BubblewrapWorkspace
from codefactory.sandbox.images import ImageCache
from codefactory.sandbox.mirror import Mirrors
from codefactory.sandbox.port import Phase
from codefactory.sandbox.setup import install_dependencies
from tests.conftest import git, make_repo
from tests.integration.test_mirror import plant_traps

pytestmark = pytest.mark.usefixtures("bwrap_available")

FILES = {"requirements.txt": "idna==3.7\n", "app.py": "import idna\n"}


@pytest.fixture
def images(tmp_path: Path) -> ImageCache:
    return ImageCache(tmp_path / "images", python="/usr/bin/python3")


@pytest.fixture
def sandbox(tmp_path: Path, uv_cache: Path, images: ImageCache) -> Iterator[BubblewrapSandbox]:
    sandbox = BubblewrapSandbox(tmp_path / "work", uv_cache, images=images)
    yield sandbox
    sandbox.close()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    make_repo(tmp_path / "repo", FILES)
    return tmp_path / "repo"


def provision(sandbox: BubblewrapSandbox, repo: Path, run_id: str) -> BubblewrapWorkspace:
    return sandbox.provision(repo=repo, commit="HEAD", run_id=run_id)


def idna_version(ws: BubblewrapWorkspace) -> str:
    code = "import idna; print(idna.__version__)"
    return ws.exec(["python", "-c", code], phase=Phase.CHECK).stdout.strip()


def test_the_first_run_builds_the_image_and_later_runs_reuse_it(
    sandbox: BubblewrapSandbox, repo: Path
) -> None:
    first = provision(sandbox, repo, "r1")
    assert first.lease is not None and first.lease.built
    assert idna_version(first) == "3.7"
    first.destroy()
    started = time.perf_counter()
    second = provision(sandbox, repo, "r2")
    elapsed = time.perf_counter() - started
    try:
        assert second.lease is not None and not second.lease.built
        assert elapsed < 1.0
        # the loop's setup step finds everything installed and runs nothing
        assert install_dependencies(second) == ["requirements.txt"]
        assert idna_version(second) == "3.7"
        assert second.changes().is_empty
    finally:
        second.destroy()


def test_a_new_commit_reuses_the_environment_and_gets_its_own_tree(
    sandbox: BubblewrapSandbox, repo: Path
) -> None:
    first = provision(sandbox, repo, "r1")
    (repo / "app.py").write_text("import idna  # changed\n")
    git(repo, "commit", "-qam", "code only")
    second = provision(sandbox, repo, "r2")
    try:
        assert first.lease and second.lease
        assert second.lease.env == first.lease.env and not second.lease.built
        assert second.lease.tree != first.lease.tree
        assert second.read_file("app.py") == b"import idna  # changed\n"
        assert first.read_file("app.py") == b"import idna\n"
    finally:
        first.destroy()
        second.destroy()


def test_a_dependency_edit_builds_a_new_image_and_the_old_one_goes_stale(
    sandbox: BubblewrapSandbox, repo: Path, images: ImageCache
) -> None:
    provision(sandbox, repo, "r1").destroy()
    (repo / "requirements.txt").write_text("idna==3.6\n")
    git(repo, "commit", "-qam", "downgrade")
    ws = provision(sandbox, repo, "r2")
    try:
        assert ws.lease is not None and ws.lease.built
        assert idna_version(ws) == "3.6"
        envs = [i for i in images.layers() if i.kind == "env"]
        assert sorted(i.current for i in envs) == [False, True]
        assert [i for i in envs if i.current][0].in_use
    finally:
        ws.destroy()
    removed = images.prune()
    assert sorted((i.kind, i.current) for i in removed) == [("env", False), ("tree", False)]
    assert all(i.current for i in images.layers())


def test_in_use_layers_are_never_pruned(
    sandbox: BubblewrapSandbox, repo: Path, images: ImageCache
) -> None:
    ws = provision(sandbox, repo, "r1")
    try:
        (repo / "requirements.txt").write_text("idna==3.6\n")
        git(repo, "commit", "-qam", "downgrade, not built")
        assert images.prune() == []  # stale now, but a workspace holds it
        assert idna_version(ws) == "3.7"
    finally:
        ws.destroy()
    assert {i.kind for i in images.prune()} == {"env", "tree"}


def test_editing_a_dependency_file_in_the_workspace_reruns_setup_over_the_image(
    sandbox: BubblewrapSandbox, repo: Path
) -> None:
    ws = provision(sandbox, repo, "r1")
    try:
        assert ws.installed_dependencies() == ["requirements.txt"]
        ws.write_file("requirements.txt", b"idna==3.6\n")
        assert ws.installed_dependencies() is None
        assert install_dependencies(ws) == ["requirements.txt"]
        assert idna_version(ws) == "3.6"
        assert ws.changes().paths == ("requirements.txt",)
        assert ws.lease is not None
        env_site = list((ws.lease.env / "lib").glob("python*/site-packages/idna-3.7.dist-info"))
        assert env_site, "the image itself is untouched"
    finally:
        ws.destroy()


def test_concurrent_first_runs_build_the_image_once(sandbox: BubblewrapSandbox, repo: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(provision, sandbox, repo, f"c{i}") for i in range(8)]
    made = [f.result() for f in futures if f.exception() is None]
    try:
        assert len(made) == 8, [repr(f.exception()) for f in futures if f.exception()]
        assert sum(1 for ws in made if ws.lease and ws.lease.built) == 1
        assert {idna_version(ws) for ws in made} == {"3.7"}
    finally:
        for ws in made:
            ws.destroy()


def _fake_build(tree: Path, env: Path) -> list[str]:
    """An environment build without the network: a setuid interpreter and a FIFO left behind."""
    (env / "bin").mkdir()
    (env / "bin" / "python").write_text("#!/bin/sh\n")
    (env / "bin" / "python").chmod(0o4755)
    os.mkfifo(env / "bin" / "pipe")
    return sorted(p.name for p in tree.iterdir() if p.name.startswith("requirements"))


def test_layers_come_from_the_mirror_owned_by_the_sandbox_user_and_normalised(
    tmp_path: Path, repo: Path
) -> None:
    owner = (4321, 4322) if os.geteuid() == 0 else None
    mirrors = Mirrors(tmp_path / "mirrors")
    cache = ImageCache(tmp_path / "images", python="python3", owner=owner, mirrors=mirrors)
    mirror = mirrors.sync(repo)
    lease = cache.lease(mirror, mirror.resolve("HEAD"), _fake_build)
    try:
        assert lease.built and lease.installed == ("requirements.txt",)
        assert lease.normalised == ("bin/pipe", "bin/python")
        assert (lease.tree / "app.py").read_text() == "import idna\n"
        assert stat.S_IMODE((lease.env / "bin" / "python").stat().st_mode) == 0o755
        assert not (lease.env / "bin" / "pipe").exists()
        assert stat.S_IMODE(cache.root.stat().st_mode) == 0o700
        if owner is not None:
            owners = {(p.lstat().st_uid, p.lstat().st_gid) for p in lease.tree.rglob("*")}
            assert owners == {owner} | {(0, 0)}  # the `.complete` marker stays the factory's
            assert (lease.env.stat().st_uid, lease.env.stat().st_gid) == owner
        again = cache.lease(mirror, lease.key.commit, _fake_build)
        assert not again.built and again.tree == lease.tree
        for fd in again.locks:
            os.close(fd)
    finally:
        for fd in lease.locks:
            os.close(fd)


def test_keys_listing_and_pruning_never_run_git_in_the_repository(
    tmp_path: Path, repo: Path
) -> None:
    (repo / "requirements.txt").write_text("idna==3.6\n")
    git(repo, "commit", "-qam", "downgrade")
    marker = plant_traps(repo, tmp_path / "traps")
    cache = ImageCache(tmp_path / "images", python="python3")
    lease = cache.lease(repo, "HEAD~1", _fake_build)  # a path: synced into <images>/../mirrors
    for fd in lease.locks:
        os.close(fd)
    newer = cache.lease(repo, "HEAD", _fake_build)
    try:
        assert newer.key.commit == cache.mirrors.sync(repo).resolve("HEAD")
        assert {(i.kind, i.current) for i in cache.layers()} == {
            ("tree", True), ("tree", False), ("env", True), ("env", False),
        }  # fmt: skip
        assert {i.key for i in cache.prune()} == {lease.key.tree_id, lease.key.dep_hash}
    finally:
        for fd in newer.locks:
            os.close(fd)
    assert not marker.exists(), marker.read_text()


def test_an_environment_is_never_shared_past_what_its_key_names(tmp_path: Path) -> None:
    """Red team: one branch changed only `reqs/base.txt` (pulled in with `-r`) and built the
    environment that the main branch then reused."""
    from codefactory.sandbox.mirror import Mirrors

    images = ImageCache(tmp_path / "images", python="/usr/bin/python3")
    mirrors = Mirrors(tmp_path / "mirrors")
    plain = tmp_path / "plain"
    make_repo(plain, {"requirements.txt": "idna==3.7\n", "app.py": "A = 1\n"})
    first = images.key(mirrors.sync(plain), "HEAD")
    (plain / "app.py").write_text("A = 2\n")
    git(plain, "commit", "-qam", "code only")
    assert images.key(mirrors.sync(plain), "HEAD").dep_hash == first.dep_hash

    nested = tmp_path / "nested"
    make_repo(nested, {"requirements.txt": "-r reqs/base.txt\n", "reqs/base.txt": "idna==3.7\n"})
    before = images.key(mirrors.sync(nested), "HEAD")
    (nested / "reqs" / "base.txt").write_text("./evil-wheel-1.0-py3-none-any.whl\n")
    git(nested, "commit", "-qam", "only the included file")
    assert images.key(mirrors.sync(nested), "HEAD").dep_hash != before.dep_hash


def test_a_layer_nested_a_thousand_folders_deep_is_listed_sized_and_pruned(
    tmp_path: Path,
) -> None:
    """Red team: a build left a 1,200-deep folder chain in its environment, and the recursive
    walks of listing and pruning raised RecursionError for every repository's builds."""
    import os

    from codefactory.sandbox.fstree import remove_tree, tree_size

    deep = tmp_path / "deep"
    deep.mkdir()
    fd = os.open(deep, os.O_DIRECTORY)
    for _ in range(1200):  # by descriptor: Path.mkdir(parents=True) recurses too
        os.mkdir("d", dir_fd=fd)
        inner = os.open("d", os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = inner
    leaf = os.open("leaf.txt", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd)
    os.write(leaf, b"x" * 10)
    os.close(leaf)
    os.close(fd)
    assert tree_size(deep) == 10
    remove_tree(deep)
    assert not deep.exists()
