"""People with real SSH keys (made by ssh-keygen in tmp_path) and a run waiting for review,
for the signed-verdict and governance tests."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from codefactory.config import Settings
from codefactory.domain import (
    Change,
    ChangeKind,
    CheckResult,
    FileChange,
    Proposal,
    RunState,
    TriggerEvent,
)
from codefactory.factory import Factory, build_factory
from codefactory.identity.settings import IdentitySettings
from codefactory.package.port import PackageContents
from tests.directory_helpers import os_account, person, write_directory

REPOSITORY = "local:/srv/payments"


@dataclass(frozen=True)
class Key:
    private: Path
    public: str


def make_key(folder: Path, name: str) -> Key:
    """A fresh Ed25519 key pair without passphrase."""
    folder.mkdir(parents=True, exist_ok=True)
    private = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(private)],
        check=True,
    )
    return Key(private, private.with_name(name + ".pub").read_text().strip())


@dataclass(frozen=True)
class People:
    directory: Path
    keys: dict[str, Key]


def people(tmp_path: Path) -> People:
    """priya (sponsor, this OS account), jordan and mallory (reviewers), carol (reviewer who
    caused the trigger), sam (security), pat and quinn (policy-admin), rita and ravi
    (registry-admin), dana (no role); each but priya with a key."""
    folder = tmp_path / "people"
    roles = {
        "jordan.lee": ["reviewer"],
        "mallory": ["reviewer"],
        "carol": ["reviewer"],
        "sam": ["security"],
        "pat": ["policy-admin"],
        "quinn": ["policy-admin"],
        "rita": ["registry-admin"],
        "ravi": ["registry-admin"],
        "dana": [],
    }
    keys = {name: make_key(folder / "keys", name) for name in roles}
    entries = {
        "priya.shah": person("Priya Shah", roles=["sponsor"], unix=os_account()),
        **{name: person(name, roles=r, ssh_keys=[keys[name].public]) for name, r in roles.items()},
    }
    return People(write_directory(folder / "directory.toml", entries), keys)


def factory_for(tmp_path: Path, directory: Path, **settings: object) -> Factory:
    identity = IdentitySettings(directory_file=directory)
    return build_factory(Settings(data_dir=tmp_path / "data", identity=identity, **settings))  # type: ignore[arg-type]


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def run_in_review(
    factory: Factory,
    tmp_path: Path,
    *,
    sponsor: str = "priya.shah",
    caused_by: str = "",
    engine: str = "recipe:lint-fix",
    results: tuple[CheckResult, ...] = (),
) -> str:
    """A run whose change sits on a forge branch with a built package, waiting for review,
    made by the factory's own parts: a delegation token signed by the issuer (naming the
    sponsor and who caused the trigger), a commit signed by the agent's key carrying the
    `Run-Id` trailer, the package with the agent's provenance and the issuer's attestation.
    `engine` names who proposed it and `results` the checks that ran (a recipe's change
    with passing checks is low risk: a standard change)."""
    event = TriggerEvent(
        source="cli",
        kind=ChangeKind.FIX_LINT,
        external_id="PAY-1",
        actor=sponsor,
        repository=REPOSITORY,
        title="fix lint",
        body="",
        received_at=datetime.now(UTC),
        payload_digest="sha256:" + "0" * 64,
        caused_by=caused_by,
    )
    with factory.store.atomic() as tx:
        trigger_id = tx.record_trigger(event)
        run_id = tx.create_run(
            trigger_id=trigger_id, event=event, sponsor=sponsor, agent_id=factory.settings.agent_id
        )
    agent = factory.identity.agents.require_active(factory.settings.agent_id)
    with factory.store.atomic() as tx:
        tx.transition(run_id, RunState.AUTHORIZED)
        factory.identity.delegation.issue(
            factory.store.require_run(run_id), agent, session=tx.session
        )
    work = tmp_path / f"work-{run_id}"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    (work / "a.py").write_text("x = 1\n")
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "base", cwd=work)
    base = git("rev-parse", "HEAD", cwd=work)
    branch = f"factory/{run_id}"
    change = Change(files=(FileChange(path="a.py", content=b"x = 2\n"),))
    forge = factory.loop.forge
    head = forge.open_change(
        repo=work,
        repository=REPOSITORY,
        base_commit=base,
        branch=branch,
        change=change,
        message=f"fix lint\n\nchange\n\nAgent-Id: {agent.id}\nRun-Id: {run_id}\n",
        author_name=agent.display_name,
        author_email=agent.email,
    )
    states = [
        RunState.PROVISIONED,
        RunState.CONTEXT_READY,
        RunState.PROPOSING,
        RunState.VERIFYING,
        RunState.VERIFIED,
    ]
    with factory.store.atomic() as tx:
        for state in states:
            tx.transition(run_id, state)
    package = factory.loop.packager.build(
        PackageContents(
            run=factory.store.require_run(run_id),
            trigger=event,
            proposal=Proposal(engine=engine, engine_version="1", rationale="lint"),
            results=results,
            rounds=1,
            patch=forge.diff(repository=REPOSITORY, base_commit=base, head_commit=head),
            commit=head,
            branch=branch,
            forge_repository=str(forge.repository_path(REPOSITORY)),
            change=change,
        )
    )
    with factory.store.atomic() as tx:
        tx.record_package(package)
        tx.transition(
            run_id,
            RunState.PACKAGED,
            head_commit=head,
            branch=branch,
            package_dir=str(package.directory),
        )
        tx.transition(run_id, RunState.IN_REVIEW)
    return run_id


def reviewer_directory(folder: Path, reviewer: str = "jordan.lee") -> tuple[Path, Path]:
    """The standard directory (`tests/directory_helpers.py`) with `reviewer` holding the
    `reviewer` role and a fresh key; returns the directory file and the private key."""
    from tests.directory_helpers import standard_directory

    made = make_key(folder / "keys", reviewer)
    entry = person(reviewer, roles=["reviewer"], ssh_keys=[made.public])
    return standard_directory(folder, {reviewer: entry}), made.private
