"""The factory's mirror of a source repository, against real git: host git never runs in the
source, whatever its git folder holds, and an export is the tree exactly as git stores it."""

from __future__ import annotations

import os
import stat
import statistics
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from codefactory.sandbox.errors import ProvisionFailed
from codefactory.sandbox.images import ImageCache
from codefactory.sandbox.mirror import Mirror, Mirrors
from tests.conftest import git, make_repo

HOOKS = (
    "post-checkout", "reference-transaction", "post-index-change", "fsmonitor-watchman",
    "pre-commit", "post-commit", "post-update", "pre-auto-gc", "pre-push", "post-merge",
)  # fmt: skip
TRAPS = (
    "core.fsmonitor", "core.sshCommand", "core.alternateRefsCommand", "core.pager",
    "uploadpack.packObjectsHook", "diff.external", "filter.evil.smudge", "filter.evil.clean",
    "filter.evil.process", "diff.evil.textconv", "diff.evil.command",
)  # fmt: skip
SECRET = "TOP SECRET of another repository\n"


def _script(folder: Path, name: str, marker: Path) -> Path:
    path = folder / f"evil-{name}"
    path.write_text(f"#!/bin/sh\necho {name} >> {marker}\ncat\n")
    path.chmod(0o755)
    return path


def plant_traps(repo: Path, folder: Path) -> Path:
    """Arm every way a source's git folder can run a program on the host; returns the marker
    file each trap appends its name to. Run no git command in `repo` afterwards."""
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "ran"
    hooks = folder / "hooks"
    hooks.mkdir(exist_ok=True)
    for hook in HOOKS:
        for where in (repo / ".git" / "hooks", hooks):
            (where / hook).write_text(f"#!/bin/sh\necho hook-{hook} >> {marker}\n")
            (where / hook).chmod(0o755)
    lines = []
    for key in TRAPS:
        section, _, name = key.rpartition(".")
        head, _, sub = section.partition(".")
        title = f'[{head} "{sub}"]' if sub else f"[{head}]"
        lines.append(f"{title}\n\t{name} = {_script(folder, key, marker)}\n")
    included = folder / "included.cfg"
    included.write_text(
        f"[uploadpack]\n\tpackObjectsHook = {_script(folder, 'included-hook', marker)}\n"
        f"[core]\n\tfsmonitor = {_script(folder, 'included-fsmonitor', marker)}\n"
    )
    lines.append(f"[core]\n\thooksPath = {hooks}\n\tuntrackedCache = true\n")
    lines.append(f"[include]\n\tpath = {included}\n")
    with (repo / ".git" / "config").open("a") as config:
        config.write("".join(lines))
    return marker


def other_repository(tmp_path: Path) -> tuple[Path, str]:
    """A repository the source must never lend: its secret commit's id."""
    other = tmp_path / "other"
    make_repo(other, {"secret.txt": SECRET})
    return other, git(other, "rev-parse", "HEAD")


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, Path, str]:
    """A source whose every git hook, driver and monitor writes a marker, whose attributes
    name the drivers, and whose object store borrows from another repository."""
    repo = tmp_path / "hostile"
    make_repo(
        repo,
        {
            ".gitattributes": "* filter=evil diff=evil\n*.txt text eol=crlf ident\n",
            "app.py": "print('hi')\n",
            "notes.txt": "$Id$ line\n",
        },
    )
    (repo / "app.py").write_text("print('changed')\n")
    git(repo, "commit", "-qam", "second")
    other, secret = other_repository(tmp_path)
    (repo / ".git" / "objects" / "info" / "alternates").write_text(f"{other}/.git/objects\n")
    return repo, plant_traps(repo, tmp_path / "traps"), secret


@pytest.fixture
def mirrors(tmp_path: Path) -> Mirrors:
    return Mirrors(tmp_path / "mirrors")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    repo = tmp_path / "service"
    make_repo(repo, {"README.md": "one\n"})
    git(repo, "tag", "v1")
    (repo / "README.md").write_text("two\n")
    git(repo, "commit", "-qam", "two")
    git(repo, "tag", "-a", "v2", "-m", "annotated")
    return repo


def test_resolve_names_commits_as_git_would_in_the_source(source: Path, mirrors: Mirrors) -> None:
    git(source, "update-ref", "refs/remotes/origin/main", "HEAD~1")
    mirror = mirrors.sync(source)
    head, first = git(source, "rev-parse", "HEAD"), git(source, "rev-parse", "HEAD~1")
    named = {
        "HEAD": head, "@": head, "main": head, "refs/heads/main": head, "v2": head,
        "v2^{commit}": head, "refs/tags/v1": first, "v1": first, "HEAD~1": first,
        "main^": first, "origin/main": first, head[:7]: head, head: head,
    }  # fmt: skip
    assert {revision: mirror.resolve(revision) for revision in named} == named
    assert mirror.source == source.resolve()
    assert git(mirror.path, "rev-parse", "--is-bare-repository") == "true"


@pytest.mark.parametrize("revision", ["nope", "-x", "--all", "HEAD@{1}", "HEAD:README.md",
                                      "HEAD~1..HEAD", "main\nHEAD", ""])  # fmt: skip
def test_unknown_revisions_and_option_lookalikes_are_refused(
    source: Path, mirrors: Mirrors, revision: str
) -> None:
    mirror = mirrors.sync(source)
    with pytest.raises(ProvisionFailed, match=r"has no commit .* \(an empty repository\?\)"):
        mirror.resolve(revision)


def test_sync_says_what_is_wrong_with_a_path(tmp_path: Path, mirrors: Mirrors) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "plain").mkdir()
    git(tmp_path, "init", "-q", "empty")
    expected = {
        "missing": "does not exist or is not a folder",
        "file": "does not exist or is not a folder",
        "plain": "not a git repository",
        "empty": r"has no commit \(an empty repository\?\)",
    }
    for name, message in expected.items():
        with pytest.raises(ProvisionFailed, match=message):
            mirrors.sync(tmp_path / name)


def test_sync_follows_the_source_moves_deletions_and_a_detached_head(
    source: Path, mirrors: Mirrors
) -> None:
    git(source, "branch", "feature")
    mirror = mirrors.sync(source)
    assert mirror.resolve("feature") == git(source, "rev-parse", "HEAD")
    git(source, "branch", "-D", "feature")
    git(source, "reset", "-q", "--hard", "HEAD~1")  # a force-push, seen from the mirror
    git(source, "checkout", "-q", "--detach", "v2")
    mirror = mirrors.sync(source)
    with pytest.raises(ProvisionFailed):
        mirror.resolve("feature")
    assert mirror.resolve("main") == git(source, "rev-parse", "v1")
    assert mirror.resolve("HEAD") == git(source, "rev-parse", "v2^{commit}")
    git(source, "checkout", "-q", "--orphan", "unborn")
    mirror = mirrors.sync(source)  # other branches exist: the sync works, HEAD names nothing
    with pytest.raises(ProvisionFailed, match="has no commit 'HEAD'"):
        mirror.resolve("HEAD")
    git(source, "checkout", "-q", "-f", "main")
    assert mirrors.sync(source).resolve("HEAD") == git(source, "rev-parse", "v1")


def test_worktree_bare_and_shallow_sources(tmp_path: Path, source: Path, mirrors: Mirrors) -> None:
    git(source, "worktree", "add", "-q", "-b", "side", str(tmp_path / "linked"), "v1")
    git(tmp_path, "clone", "-q", "--bare", str(source), "bare.git")
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{source}", "shallow")
    assert mirrors.sync(tmp_path / "linked").resolve("HEAD") == git(source, "rev-parse", "v1")
    assert mirrors.sync(tmp_path / "bare.git").resolve("v2") == git(source, "rev-parse", "HEAD")
    shallow = mirrors.sync(tmp_path / "shallow")
    assert shallow.resolve("HEAD") == git(source, "rev-parse", "HEAD")
    target = tmp_path / "tree"
    target.mkdir()
    shallow.export(shallow.resolve("HEAD"), target)
    assert (target / "README.md").read_text() == "two\n"


def test_a_hostile_source_runs_nothing_on_the_host(
    hostile: tuple[Path, Path, str], mirrors: Mirrors, tmp_path: Path
) -> None:
    repo, marker, _ = hostile
    mirror = mirrors.sync(repo)
    commit = mirror.resolve("HEAD")
    target = tmp_path / "tree"
    target.mkdir()
    mirror.export(commit, target)
    ImageCache(tmp_path / "images", python="python3", mirrors=mirrors).key(mirror, commit)
    mirror.git("diff", f"{commit}~1", commit)  # the diff machinery, in the mirror
    mirrors.sync(repo)  # a warm sync too

    assert not marker.exists(), marker.read_text()
    assert (target / "notes.txt").read_bytes() == b"$Id$ line\n"  # no filter, eol or ident
    assert sorted(os.listdir(target)) == [".gitattributes", "app.py", "notes.txt"]
    # the traps are live: the old export, `git archive` in the source, springs one
    subprocess.run(["git", "-C", str(repo), "archive", "HEAD"], capture_output=True, check=False)
    assert "filter.evil" in marker.read_text()


def test_objects_borrowed_through_alternates_are_never_fetched(
    hostile: tuple[Path, Path, str], mirrors: Mirrors
) -> None:
    repo, marker, secret = hostile
    mirror = mirrors.sync(repo)
    with pytest.raises(ProvisionFailed):
        mirror.git("cat-file", "-e", secret)
    (repo / ".git" / "refs" / "heads" / "steal").write_text(f"{secret}\n")
    with pytest.raises(ProvisionFailed, match="objects/info/alternates is ignored"):
        mirrors.sync(repo)
    with pytest.raises(ProvisionFailed):
        mirror.git("cat-file", "-e", secret)
    assert SECRET.encode() not in b"".join(
        p.read_bytes() for p in mirror.path.rglob("*") if p.is_file()
    )
    assert not marker.exists()


def test_a_link_in_the_object_store_is_refused(
    tmp_path: Path, source: Path, mirrors: Mirrors
) -> None:
    other, _ = other_repository(tmp_path)
    pack = source / ".git" / "objects" / "pack"
    pack.rename(source / ".git" / "objects" / "pack-real")
    pack.symlink_to(other / ".git" / "objects" / "pack")
    with pytest.raises(ProvisionFailed, match="objects/pack is a symbolic link"):
        mirrors.sync(source)


def test_export_writes_the_tree_as_git_stores_it(tmp_path: Path, mirrors: Mirrors) -> None:
    repo = tmp_path / "kinds"
    files = {
        ".gitattributes": "* export-ignore export-subst text eol=crlf\n",
        "run.sh": "#!/bin/sh\n$Format:%H$\n",
        "deep/er/file.txt": "a\nb\n",
    }
    make_repo(repo, files)
    (repo / "run.sh").chmod(0o755)
    (repo / "link").symlink_to("/etc/passwd")
    (repo / os.fsdecode(b"caf\xe9.txt")).write_bytes(b"latin-1 name\n")
    subprocess.run(["git", "-C", str(repo), "add", "-A"], capture_output=True, check=True)
    first = git(repo, "rev-parse", "HEAD")
    git(repo, "update-index", "--add", "--cacheinfo", f"160000,{first},vendor/sub")
    git(repo, "commit", "-qm", "kinds")
    mirror = mirrors.sync(repo)
    target = tmp_path / "tree"
    target.mkdir()
    owner = (4321, 4322) if os.geteuid() == 0 else None

    mirror.export(mirror.resolve("HEAD"), target, owner=owner)

    assert (target / "run.sh").read_bytes() == b"#!/bin/sh\n$Format:%H$\n"
    assert (target / "deep/er/file.txt").read_bytes() == b"a\nb\n"
    assert os.readlink(target / "link") == "/etc/passwd"
    assert (target / os.fsdecode(b"caf\xe9.txt")).read_bytes() == b"latin-1 name\n"
    assert (target / "vendor" / "sub").is_dir() and not os.listdir(target / "vendor" / "sub")
    assert not (target / ".git").exists()
    modes = {p.relative_to(target): p.lstat() for p in [target, *target.rglob("*")]}
    assert stat.S_IMODE(modes[Path("run.sh")].st_mode) == 0o755
    assert stat.S_IMODE(modes[Path("deep/er/file.txt")].st_mode) == 0o644
    assert all(not st.st_mode & (stat.S_ISUID | stat.S_ISGID) for st in modes.values())
    if owner is not None:
        assert {(st.st_uid, st.st_gid) for st in modes.values()} == {owner}


def test_export_refuses_a_tree_git_would_never_check_out(tmp_path: Path, mirrors: Mirrors) -> None:
    repo = tmp_path / "crafted"
    make_repo(repo, {"ok.txt": "ok\n"})

    def plumbing(*args: str, given: str) -> str:
        argv = ["git", "-C", str(repo), *args]
        return subprocess.run(argv, input=given, capture_output=True, text=True, check=True).stdout

    blob = plumbing("hash-object", "-w", "--stdin", given="#!/bin/sh\n").strip()
    hooks = plumbing("mktree", given=f"100755 blob {blob}\tpost-checkout\n").strip()
    dot_git = plumbing("mktree", given=f"040000 tree {hooks}\thooks\n").strip()
    top = plumbing("mktree", given=f"040000 tree {dot_git}\t.git\n").strip()
    outside = tmp_path / "outside"
    outside.mkdir()
    link = plumbing("hash-object", "-w", "--stdin", given=str(outside)).strip()
    folder = plumbing("mktree", given=f"100644 blob {blob}\tx\n").strip()
    twice = plumbing("mktree", given=f"120000 blob {link}\tdup\n040000 tree {folder}\tdup\n")
    mirror_of = {}
    for name, tree in {"dot-git": top, "twice": twice.strip()}.items():
        commit = git(repo, "commit-tree", tree, "-m", name)
        git(repo, "update-ref", f"refs/heads/{name}", commit)
        mirror_of[name] = commit
    mirror = mirrors.sync(repo)
    for name in mirror_of:
        target = tmp_path / name
        target.mkdir()
        with pytest.raises(ProvisionFailed, match="could not export"):
            mirror.export(mirror.resolve(name), target)
        assert not (target / ".git").exists()
    assert not os.listdir(outside)  # nothing written through the link
    with pytest.raises(ProvisionFailed, match="not a full commit id"):
        mirror.export("twice", tmp_path / "twice")


def test_concurrent_syncs_share_one_mirror(source: Path, mirrors: Mirrors) -> None:
    with ThreadPoolExecutor(6) as pool:
        synced = list(pool.map(lambda _: mirrors.sync(source), range(12)))
    assert len({m.path for m in synced}) == 1
    assert {m.resolve("HEAD") for m in synced} == {git(source, "rev-parse", "HEAD")}


def test_a_warm_sync_is_quick(source: Path, mirrors: Mirrors) -> None:
    mirrors.sync(source)
    timings = []
    for _ in range(7):
        started = time.perf_counter()
        mirror = mirrors.sync(source)
        mirror.resolve("HEAD")
        timings.append(time.perf_counter() - started)
    assert statistics.median(timings) < 0.05, timings


def test_a_mirror_object_reads_without_syncing(source: Path, mirrors: Mirrors) -> None:
    synced = mirrors.sync(source)
    again = Mirror(source=synced.source, path=synced.path)
    assert again.resolve("v2") == synced.resolve("HEAD")


@pytest.mark.parametrize("pointer", ["gitdir-file", "symlink"])
def test_a_git_pointer_to_another_owners_repository_is_refused(
    tmp_path: Path, mirrors: Mirrors, pointer: str
) -> None:
    """Red team: a `.git` pointing at a repository of another user made the factory (root)
    mirror and export that repository into the attacker's workspace."""
    private = tmp_path / "private"
    make_repo(private, {"credentials.txt": "secret\n"})
    for path in [private, *private.rglob("*")]:
        os.lchown(path, 4242, 4242)
    private.chmod(0o700)
    attacker = tmp_path / "attacker"
    attacker.mkdir()
    if pointer == "symlink":
        (attacker / ".git").symlink_to(private / ".git")
    else:
        (attacker / ".git").write_text(f"gitdir: {private / '.git'}\n")
    with pytest.raises(ProvisionFailed, match="belongs to uid 4242"):
        mirrors.sync(attacker)


def test_a_ref_that_is_a_link_is_never_followed(tmp_path: Path, mirrors: Mirrors) -> None:
    """Red team: the view linked the source's refs, and git (as root) followed a ref that is
    a symbolic link to a host file, echoing a root-only token in its error."""
    secret = tmp_path / "root-only"
    secret.write_text("0123456789abcdef0123456789abcdef01234567\n")
    secret.chmod(0o600)
    source = tmp_path / "source"
    commit = make_repo(source, {"app.py": "A = 1\n"})
    (source / ".git" / "refs" / "heads" / "stolen").symlink_to(secret)
    (source / ".git" / "refs" / "tags" / "garbage").write_text("not a ref\n")
    mirror = mirrors.sync(source)
    assert mirror.resolve("HEAD") == commit
    with pytest.raises(ProvisionFailed) as refused:
        mirror.resolve("stolen")
    assert "0123456789abcdef" not in str(refused.value)


def _owned_by(root: Path, uid: int) -> None:
    for path in [root, *root.rglob("*")]:
        os.lchown(path, uid, uid)


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A scratch folder another user can reach (pytest's own are root-only)."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="cf-owner-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_another_users_source_is_read_with_that_users_rights(
    open_tmp: Path, mirrors: Mirrors
) -> None:
    """Red team: a local user swapped their `.git` for a root-only repository's between the
    factory's owner check and its reads, and the factory (root) mirrored the root-only one.
    Every read of a source now runs with its owner's rights, so what the owner could not
    read, the factory does not read for them."""
    tmp_path = open_tmp
    source = tmp_path / "alice"
    commit = make_repo(source, {"app.py": "A = 1\n"})
    _owned_by(source, 4242)
    mirror = mirrors.sync(source)  # the upload-pack runs as uid 4242 and still fetches
    assert mirror.resolve("HEAD") == commit
    target = tmp_path / "export"
    target.mkdir()
    mirror.export(commit, target)
    assert (target / "app.py").read_text() == "A = 1\n"

    # one of alice's own objects becomes a link to a root-only copy of itself: root could
    # read it, alice cannot, so the factory must not
    _owned_by(source, 0)  # git (as root) refuses to work in another user's repository
    (source / "app.py").write_text("A = 2\n")
    blob = git(source, "hash-object", "-w", "app.py")
    git(source, "commit", "-qam", "second")
    _owned_by(source, 4242)
    loose = source / ".git" / "objects" / blob[:2] / blob[2:]
    private = tmp_path / "root-only"
    private.mkdir(mode=0o700)
    (private / "object").write_bytes(loose.read_bytes())
    loose.unlink()
    loose.symlink_to(private / "object")
    os.lchown(loose, 4242, 4242)
    with pytest.raises(ProvisionFailed, match="could not fetch"):
        mirrors.sync(source)


@pytest.mark.parametrize("target_owner", [0, 4343])
def test_a_repository_path_a_user_swapped_for_a_link_is_read_with_that_users_rights(
    open_tmp: Path, mirrors: Mirrors, target_owner: int
) -> None:
    """Red team: alice, who owns the folder holding her repository, replaced it with a link
    to a root-only repository (or to bob's private one), and the factory copied it into her
    workspace. Who controls the path, not who owns its target, is whom it reads as."""
    home = open_tmp / "alice-home"
    home.mkdir()
    private = open_tmp / "private"
    make_repo(private / "repo", {"credentials.txt": "AKIA-SECRET\n"})
    _owned_by(private, target_owner)
    private.chmod(0o700)
    (home / "proj").symlink_to(private / "repo")
    _owned_by(home, 4242)
    with pytest.raises(ProvisionFailed):
        mirrors.sync(home / "proj")


def test_the_path_decides_whose_rights_read_it(open_tmp: Path) -> None:
    from codefactory.sandbox.owner import controller

    root_owned = open_tmp / "srv" / "repo"
    root_owned.mkdir(parents=True)
    assert controller(root_owned)[0].uid == 0
    os.lchown(root_owned, 4242, 4242)
    assert controller(root_owned)[0].uid == 4242  # root's folder, alice's repository
    shared = open_tmp / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # anyone may swap what is in it, and no sticky bit
    (shared / "repo").mkdir()
    with pytest.raises(ValueError, match="several users"):
        controller(shared / "repo")
    # a user's own folder her group may write is no better (red team, fourth pass)
    alices = open_tmp / "alice"
    alices.mkdir()
    os.chown(alices, 4242, 4242)
    alices.chmod(0o775)
    (alices / "repo").mkdir()
    with pytest.raises(ValueError, match="several users"):
        controller(alices / "repo")


def test_a_link_then_dotdot_is_walked_as_the_kernel_resolves_it(open_tmp: Path) -> None:
    """Red team: `alice/ln/../../public/proj` was normalised to `public/proj` (root's) before
    the walk, while the resolve followed alice's link first and reached her link to a
    root-only repository."""
    from codefactory.sandbox.owner import controller

    alice = open_tmp / "alice"
    (alice / "a" / "b").mkdir(parents=True)
    (alice / "ln").symlink_to(alice / "a" / "b")
    (open_tmp / "public" / "proj").mkdir(parents=True)  # root's: what a lexical walk judges
    (alice / "public" / "proj").mkdir(parents=True)  # alice's: where the kernel arrives
    _owned_by(alice, 4242)
    owner, real = controller(alice / "ln" / ".." / ".." / "public" / "proj")
    assert real == alice / "public" / "proj"
    assert owner.uid == 4242


def test_a_repository_read_as_root_must_be_roots_alone(open_tmp: Path, mirrors: Mirrors) -> None:
    """Red team: a root-owned `git init --shared=group` repository let a group member plant
    links to a root-only repository's objects in `objects/XX/` between check and read."""
    shared = open_tmp / "shared"
    make_repo(shared, {"app.py": "A = 1\n"})
    fanout = next(p for p in (shared / ".git" / "objects").iterdir() if len(p.name) == 2)
    fanout.chmod(0o775)
    with pytest.raises(ProvisionFailed, match="may be changed by a user other than root"):
        mirrors.sync(shared)


def test_a_data_folder_inside_the_repository_is_refused(tmp_path: Path) -> None:
    """The repository could commit the factory's own state (advisories, sandbox ids, keys)
    into it, or a link where the factory writes: the default `./.codefactory` run from a
    checkout's root is such a folder."""
    repo = tmp_path / "repo"
    make_repo(repo, {"a.py": "A = 1\n"})
    with pytest.raises(ProvisionFailed, match="lies inside the repository"):
        Mirrors(repo / ".codefactory" / "mirrors").sync(repo)
    assert not (repo / ".codefactory").exists()


def test_an_export_larger_than_its_caps_is_refused_before_it_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Highly compressible blobs: a few kB of history that would unpack into gigabytes."""
    import codefactory.sandbox.mirror as mirror_module

    repo = tmp_path / "repo"
    make_repo(repo, {"big.bin": "0" * 50_000, "a.py": "A = 1\n", "b.py": "B = 2\n"})
    mirror = Mirrors(tmp_path / "mirrors").sync(repo)
    commit = git(repo, "rev-parse", "HEAD")
    monkeypatch.setattr(mirror_module, "MAX_FILE_BYTES", 10_000)
    target = tmp_path / "tree"
    target.mkdir()
    with pytest.raises(ProvisionFailed, match="'big.bin' of 50,000 bytes"):
        mirror.export(commit, target)
    assert not (target / "big.bin").exists()
    monkeypatch.setattr(mirror_module, "MAX_FILE_BYTES", 100_000)
    monkeypatch.setattr(mirror_module, "MAX_TREE_BYTES", 50_004)
    again = tmp_path / "again"
    again.mkdir()
    with pytest.raises(ProvisionFailed, match="more than 50,004 bytes"):
        mirror.export(commit, again)


def test_a_data_folder_inside_the_repository_under_another_name_is_refused(tmp_path: Path) -> None:
    """A bind mount gives the repository a second path that resolving does not reveal."""
    repo = tmp_path / "repo"
    make_repo(repo, {"a.py": "A = 1\n"})
    alias = tmp_path / "alias"
    alias.mkdir()
    if subprocess.run(["mount", "--bind", str(repo), str(alias)], check=False).returncode:
        pytest.skip("bind mounts need privileges this run lacks")
    try:
        with pytest.raises(ProvisionFailed, match="lies inside the repository"):
            Mirrors(alias / ".codefactory" / "mirrors").sync(repo)
    finally:
        subprocess.run(["umount", str(alias)], check=True)
