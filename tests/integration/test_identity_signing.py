"""Agents' commits signed with their own SSH key, checked by plain `git verify-commit`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from codefactory.domain import Change, FileChange
from codefactory.identity import AgentStatus
from codefactory.identity.agent_keys import AgentKeyFiles
from codefactory.identity.published import allowed_signers
from codefactory.review import ForgeError
from codefactory.review.local_forge import LocalForge
from codefactory.review.signing import AgentCommitSigning
from tests.conftest import make_repo
from tests.integration.test_identity_registry import Governance, make_governance

CHANGE = Change(files=(FileChange(path="app.py", content=b"print('fixed')\n"),))


@pytest.fixture
def governance(tmp_path: Path) -> Governance:
    return make_governance(tmp_path / "data")


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, str]:
    repo = tmp_path / "payments-api"
    return repo, make_repo(repo, {"app.py": "print('hello')\n"})


def forge_for(governance: Governance, tmp_path: Path) -> LocalForge:
    return LocalForge(
        tmp_path / "forge", signing=AgentCommitSigning(governance.identity.agent_keys)
    )


def signers_file(governance: Governance, tmp_path: Path) -> Path:
    path = tmp_path / "allowed_signers"
    path.write_text(allowed_signers(governance.identity.agents.search()))
    return path


def git(bare: Path, *args: str, signers: Path | None = None) -> subprocess.CompletedProcess[str]:
    config = ["-c", f"gpg.ssh.allowedSignersFile={signers}"] if signers else []
    return subprocess.run(
        ["git", "-C", str(bare), *config, *args], capture_output=True, text=True, check=False
    )


REPOSITORY = "acme/payments-api"


def commit_as(forge: LocalForge, source: tuple[Path, str], email: str, branch: str) -> str:
    repo, base = source
    return forge.open_change(
        repo=repo,
        repository=REPOSITORY,
        base_commit=base,
        branch=branch,
        change=CHANGE,
        message=f"fix\n\nAgent-Id: x\nRun-Id: {branch}\n",
        author_name="Agent",
        author_email=email,
    )


def test_an_agents_commit_verifies_with_plain_git(
    governance: Governance, source: tuple[Path, str], tmp_path: Path
) -> None:
    agent = governance.identity.agents.require_active("agent:codefactory-recipes")
    forge = forge_for(governance, tmp_path)
    commit = commit_as(forge, source, agent.email, "factory/r-1")
    signers = signers_file(governance, tmp_path)
    bare = forge.repository_path(REPOSITORY)
    verified = git(bare, "verify-commit", "-v", commit, signers=signers)
    assert verified.returncode == 0, verified.stderr
    assert f'Good "git" signature for {agent.email}' in verified.stderr
    shown = git(bare, "log", "--show-signature", "-1", commit, signers=signers).stdout
    assert 'Good "git" signature' in shown
    fingerprint = governance.identity.agent_keys.public(agent.id).fingerprint
    assert git(bare, "log", "--format=%G?|%GS|%GF", "-1", commit, signers=signers).stdout == (
        f"G|{agent.email}|{fingerprint}\n"
    )
    signature = forge.verify_commit(REPOSITORY, commit, signers)
    assert signature.good and signature.signer == agent.email
    assert signature.describe() == f"good, signed by {agent.email} ({fingerprint})"


def test_commits_by_other_authors_are_not_signed(
    governance: Governance, source: tuple[Path, str], tmp_path: Path
) -> None:
    forge = forge_for(governance, tmp_path)
    commit = commit_as(forge, source, "dev@bank.example", "human")
    signature = forge.verify_commit(REPOSITORY, commit, signers_file(governance, tmp_path))
    assert (signature.status, signature.describe()) == ("N", "unsigned")
    assert LocalForge(tmp_path / "forge2").signing is None


def test_a_commit_signed_by_an_unknown_key_does_not_verify(
    governance: Governance, source: tuple[Path, str], tmp_path: Path
) -> None:
    agent = governance.identity.agents.require_active("agent:codefactory-recipes")
    signers = signers_file(governance, tmp_path)
    # Someone else's key, claiming the agent's address: not in allowed_signers.
    impostor = AgentKeyFiles(tmp_path / "impostor")
    impostor.create(agent.id, comment="impostor")
    forge = LocalForge(tmp_path / "forge", signing=AgentCommitSigning(impostor))
    commit = commit_as(forge, source, agent.email, "factory/forged")
    verified = git(forge.repository_path(REPOSITORY), "verify-commit", commit, signers=signers)
    assert verified.returncode != 0
    assert "No principal matched" in verified.stderr
    signature = forge.verify_commit(REPOSITORY, commit, signers)
    assert not signature.good and signature.status == "U"
    assert signature.describe() == "signed by a key not in allowed_signers (unknown signer)"


def test_a_revoked_agents_key_stops_verifying_later_commits(
    governance: Governance, source: tuple[Path, str], tmp_path: Path
) -> None:
    agents = governance.identity.agents
    agent = agents.create(
        "agent:old-bot", display_name="Old", owner="dana", engines=["x"], actor="user:a"
    )
    forge = forge_for(governance, tmp_path)
    before = commit_as(forge, source, agent.email, "before")
    agents.set_status(agent.id, AgentStatus.REVOKED, actor="user:sec", reason="key leaked")
    signers = signers_file(governance, tmp_path)
    assert forge.verify_commit(REPOSITORY, before, signers).good
    repo, base = source
    bare = forge.repository_path(REPOSITORY)
    tree = git(bare, "rev-parse", f"{before}^{{tree}}").stdout.strip()
    key = governance.identity.agent_keys.private_key_path(agent.id)
    later = subprocess.run(
        ["git", "-C", str(bare), "-c", "gpg.format=ssh", "-c", f"user.signingkey={key}",
         "-c", "user.name=Old", "-c", f"user.email={agent.email}",
         "commit-tree", "-S", tree, "-p", base, "-m", "after revocation"],
        capture_output=True, text=True, check=True,
        env={"PATH": "/usr/bin:/bin", "GIT_COMMITTER_DATE": "2099-01-01T00:00:00Z",
             "HOME": str(tmp_path)},
    ).stdout.strip()  # fmt: skip
    assert not forge.verify_commit(REPOSITORY, later, signers).good


def test_an_agent_without_its_key_file_cannot_commit(
    governance: Governance, source: tuple[Path, str], tmp_path: Path
) -> None:
    agent = governance.identity.agents.require_active("agent:codefactory-recipes")
    governance.identity.agent_keys.private_key_path(agent.id).unlink()
    with pytest.raises(ForgeError, match="no signing key for agent-codefactory-recipes@"):
        commit_as(forge_for(governance, tmp_path), source, agent.email, "factory/r-2")
