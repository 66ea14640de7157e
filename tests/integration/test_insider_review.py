"""An insider who can write the data folder (factory.db, the forge, the packages) but holds no
key: the red team's F2, F3, F4 (token) and F5, each reproduced, each refused. The commit, the
package, the sponsor and the person who caused the trigger come from signatures (the agent's,
the issuer's), re-verified at review and at hand-off; rows that disagree are named."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from codefactory.domain import RunState
from codefactory.factory import Factory, commit_verifier
from codefactory.identity.errors import DelegationRefused
from codefactory.identity.ssh_signatures import GOVERNANCE_NAMESPACE, REVIEW_NAMESPACE, sign
from codefactory.package.manifest import write_manifest
from codefactory.review.errors import FactsRefused
from tests.integration.signed_people import People, factory_for, people, run_in_review
from tests.store_sql import store_sql


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Factory, People, Path]:
    tmp_path = tmp_path_factory.mktemp("insider-review")
    found = people(tmp_path)
    return factory_for(tmp_path, found.directory), found, tmp_path


def sql(factory: Factory, statement: str, *args: str) -> None:
    """The insider's edit of factory.db, below the factory."""
    with store_sql(factory.settings.database_url) as db:  # the world's, whichever it is
        db.execute(statement, args)


def approve(factory: Factory, run_id: str, key: Path, who: str = "jordan.lee") -> RunState:
    body = factory.review.statement_for(run_id, reviewer=who, approve=True)
    return factory.review.decide(
        run_id,
        statement=body,
        signature=sign(body, key, REVIEW_NAMESPACE),
        reviewer=who,
        approve=True,
    ).state


def refusals(factory: Factory, run_id: str) -> list[str]:
    return [
        str(r.data["reason"]) for r in factory.audit.events(run_id) if r.name == "review-refused"
    ]


def forged_commit(factory: Factory, run_id: str) -> str:
    """tamper_branch_and_db.sh: an unsigned commit adding backdoor.py on the review branch."""
    run = factory.store.require_run(run_id)
    bare = str(factory.loop.forge.repository_path(run.repository))

    def git(*args: str, stdin: str = "") -> str:
        env = {
            "GIT_AUTHOR_NAME": "x",
            "GIT_AUTHOR_EMAIL": "a@b",
            "GIT_COMMITTER_NAME": "x",
            "GIT_COMMITTER_EMAIL": "a@b",
            "PATH": "/usr/bin:/bin",
        }
        return subprocess.run(
            ["git", "--git-dir", bare, *args],
            input=stdin,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    old = git("rev-parse", f"refs/heads/{run.branch}")
    blob = git("hash-object", "-w", "--stdin", stdin="import os\n")
    tree = git("mktree", stdin=git("ls-tree", old) + f"\n100644 blob {blob}\tbackdoor.py\n")
    message = git("log", "-1", "--format=%B", old)  # the Run-Id trailer copied
    new = git("commit-tree", tree, "-p", f"{old}^", "-m", message)
    git("update-ref", f"refs/heads/{run.branch}", new, old)
    return new


def test_f2_a_branch_and_head_commit_moved_to_an_unsigned_commit_are_refused(
    world: tuple[Factory, People, Path],
) -> None:
    factory, found, tmp_path = world
    run_id = run_in_review(factory, tmp_path)
    signed_commit = factory.store.require_run(run_id).head_commit
    new = forged_commit(factory, run_id)
    with pytest.raises(FactsRefused, match=f"points at {new}, not at the signed commit"):
        approve(factory, run_id, found.keys["jordan.lee"].private)
    sql(factory, "update runs set head_commit=? where id=?", new, run_id)
    with pytest.raises(FactsRefused, match=f"runs.head_commit {new} is not the commit the agent"):
        approve(factory, run_id, found.keys["jordan.lee"].private)
    assert factory.store.require_run(run_id).state is RunState.IN_REVIEW
    assert any(signed_commit in reason for reason in refusals(factory, run_id))


def test_f2_a_commit_not_signed_by_the_agents_key_is_refused_even_where_the_rows_agree(
    world: tuple[Factory, People, Path],
) -> None:
    from codefactory.review.signed_facts import SignedFacts

    factory, found, tmp_path = world
    run_id = run_in_review(factory, tmp_path)
    facts = factory.review.facts
    assert isinstance(facts, SignedFacts)
    stranger = found.keys["mallory"].public
    no_key = SignedFacts(
        forge=facts.forge,
        tokens=facts.tokens,
        issuer_keys=facts.issuer_keys,
        agent_key=lambda _: stranger,
        allowed_signers=facts.allowed_signers,
    )
    with pytest.raises(FactsRefused, match="signature does not verify"):
        no_key.establish(factory.store.require_run(run_id), None)


def test_f3_a_package_rewritten_with_its_manifest_before_review_is_refused(
    world: tuple[Factory, People, Path],
) -> None:
    factory, found, tmp_path = world
    run_id = run_in_review(factory, tmp_path)
    package = Path(factory.store.require_run(run_id).package_dir)
    built = next(r.data for r in factory.audit.events(run_id) if r.name == "package-built")
    assert built["package_digest"].startswith("sha256:")
    assert built["attestation_digest"].startswith("sha256:")
    (package / "summary.md").write_text("# Trivial lint fix\n\nWhitespace only.\n")  # tamper
    (package / "change.patch").write_text("+# sample \n")
    forged = write_manifest(package)
    with pytest.raises(FactsRefused, match=f"hashes to {forged}, but the issuer attested"):
        factory.review.statement_for(run_id, reviewer="jordan.lee", approve=True)
    (package / "extra.md").write_text("read me\n")  # a file the manifest does not list
    with pytest.raises(FactsRefused, match="extra.md was added after the package was built"):
        factory.review.statement_for(run_id, reviewer="jordan.lee", approve=True)
    assert refusals(factory, run_id)


def test_f3_an_attestation_signed_by_another_key_is_refused(
    world: tuple[Factory, People, Path],
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from codefactory.identity.jwk import thumbprint
    from codefactory.identity.port import IssuerSignature
    from codefactory.package.attestation import attest

    factory, _, tmp_path = world
    run_id = run_in_review(factory, tmp_path)
    run = factory.store.require_run(run_id)
    package = Path(run.package_dir)
    (package / "change.patch").write_text("+# sample \n")
    forged = write_manifest(package)
    insider = Ed25519PrivateKey.generate()
    raw = insider.public_key().public_bytes_raw()

    class InsiderIssuer:
        name = "insider"

        def sign(self, message: bytes) -> IssuerSignature:
            return IssuerSignature(
                kid=thumbprint(raw), public_key=raw, signature=insider.sign(message)
            )

    attest(
        package,
        run_id=run_id,
        commit=run.head_commit,
        package_digest=forged,
        issuer=InsiderIssuer(),
    )
    with pytest.raises(FactsRefused, match="not a pinned issuer key"):
        factory.review.statement_for(run_id, reviewer="jordan.lee", approve=True)


def test_f3_audit_explain_says_the_package_changed_after_approval(
    world: tuple[Factory, People, Path],
) -> None:
    from rich.console import Console

    from codefactory.audit.explain import explain_run, render_explanation

    factory, found, tmp_path = world
    run_id = run_in_review(factory, tmp_path)
    approve(factory, run_id, found.keys["jordan.lee"].private)
    before = explain_run(factory, run_id, commits=commit_verifier(factory.settings))
    assert before is not None and before["package"]["changed_after_approval"] is False
    (approval,) = before["approvals"]
    assert approval["verified"] is True, approval["problem"]  # its kept statement, re-checked
    package = Path(factory.store.require_run(run_id).package_dir)
    (package / "risk.json").write_text('{"risk": "low"}\n')
    write_manifest(package)
    after = explain_run(factory, run_id, commits=commit_verifier(factory.settings))
    assert after is not None and after["package"]["changed_after_approval"] is True
    console = Console(record=True, width=400)
    render_explanation(console, after)
    assert "PACKAGE CHANGED AFTER APPROVAL" in console.export_text()


def test_f5_a_sponsor_or_cause_rewritten_in_the_database_is_refused(
    world: tuple[Factory, People, Path],
) -> None:
    factory, found, tmp_path = world
    run_id = run_in_review(factory, tmp_path, caused_by="user:carol")
    claims = factory.identity.delegation.verified_claims(factory.store.require_run(run_id))
    assert claims["sub"] == "priya.shah" and claims["codefactory:caused_by"] == "user:carol"
    trigger = factory.store.require_run(run_id).trigger_id
    sql(factory, "update trigger_details set caused_by='user:quinn' where trigger_id=?", trigger)
    with pytest.raises(FactsRefused, match="trigger_details.caused_by says 'user:quinn'"):
        approve(factory, run_id, found.keys["carol"].private, who="carol")
    sql(factory, "update runs set sponsor='quinn' where id=?", run_id)
    with pytest.raises(FactsRefused, match="runs.sponsor says 'quinn' but the signed"):
        approve(factory, run_id, found.keys["jordan.lee"].private)
    assert factory.store.require_run(run_id).state is RunState.IN_REVIEW


def test_f4_a_revocation_cleared_in_the_database_still_holds(
    world: tuple[Factory, People, Path],
) -> None:
    from codefactory.identity.governance import (
        GovernanceAction,
        GovernanceDesk,
        statement_verifier,
    )
    from codefactory.identity.statements import governance_statement

    factory, found, tmp_path = world
    run_id = run_in_review(factory, tmp_path)
    token = factory.identity.delegation.token_for(run_id)
    assert token is not None
    body = governance_statement(action="token-revoke", target=token.jti, person="sam")
    desk = GovernanceDesk(
        audit=factory.audit,
        verifier=statement_verifier(factory.settings, factory.identity.directory),
    )
    desk.authorize(
        body,
        sign(body, found.keys["sam"].private, GOVERNANCE_NAMESPACE),
        action=GovernanceAction.TOKEN_REVOKE,
        target=token.jti,
        claimed="sam",
    )
    factory.identity.delegation.revoke(token.jti, actor="user:sam", reason="compromised")
    sql(
        factory,
        "update delegation_tokens set revoked_at=NULL, revoked_reason='' where jti=?",
        token.jti,
    )
    run = factory.store.require_run(run_id)
    with pytest.raises(DelegationRefused, match="the audit log says so"):
        factory.identity.delegation.check(run, action="review:hand-off")
    assert approve(factory, run_id, found.keys["jordan.lee"].private) is RunState.FAILED
    assert "audit log says so" in factory.store.require_run(run_id).reason
