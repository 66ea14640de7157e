"""Signed verdicts: a statement over the run, its commit and its package, signed with the
reviewer's own SSH key (real ssh-keygen), checked against the directory; everything else is
refused with an audit event, and an outsider re-checks the approval with `ssh-keygen -Y
verify` on the files in the package."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from codefactory.domain import RunState
from codefactory.factory import Factory, commit_verifier
from codefactory.identity.ssh_signatures import REVIEW_NAMESPACE, sign
from codefactory.identity.statements import review_statement
from codefactory.review.errors import (
    NonHumanReviewer,
    SelfApprovalRefused,
    VerdictRefused,
)
from tests.integration.signed_people import People, factory_for, people, run_in_review


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Factory, People, Path]:
    tmp_path = tmp_path_factory.mktemp("signed-review")
    found = people(tmp_path)
    return factory_for(tmp_path, found.directory), found, tmp_path


def signed(factory: Factory, run_id: str, who: str, key: Path, **fields: object) -> bytes:
    return factory.review.statement_for(run_id, reviewer=who, approve=True, **fields)  # type: ignore[arg-type]


def decide(factory: Factory, run_id: str, who: str, key: Path, body: bytes | None = None):  # type: ignore[no-untyped-def]
    body = body if body is not None else signed(factory, run_id, who, key)
    return factory.review.decide(
        run_id,
        statement=body,
        signature=sign(body, key, REVIEW_NAMESPACE),
        reviewer=who,
        approve=True,
    )


def refusals(factory: Factory, run_id: str) -> list[str]:
    return [
        str(r.data["reason"]) for r in factory.audit.events(run_id) if r.name == "review-refused"
    ]


def test_an_approval_signed_by_the_reviewer_is_kept_and_checkable_by_ssh_keygen(
    world: tuple[Factory, People, Path],
) -> None:
    factory, found, tmp_path = world
    run_id = run_in_review(factory, tmp_path)
    run = decide(factory, run_id, "Jordan.Lee", found.keys["jordan.lee"].private)
    assert run.state in (RunState.HANDED_OFF, RunState.FAILED)  # no delegation token here
    (event,) = [r for r in factory.audit.events(run_id) if r.name == "review-signed"]
    assert event.actor == "user:jordan.lee"
    assert event.data["key_fingerprint"].startswith("SHA256:")
    package = Path(factory.store.require_run(run_id).package_dir)
    statement = package / event.data["statement"]
    assert statement == package / "reviews" / "1-approve.json"
    body = json.loads(statement.read_bytes())
    assert body["run_id"] == run_id and body["reviewer"] == "jordan.lee"
    assert body["_type"] == "codefactory.review.v1"
    # the outsider's check: exactly the command the docs give, on the files in the package
    checked = subprocess.run(
        ["ssh-keygen", "-Y", "verify", "-f", str(statement.with_suffix(".allowed_signers")),
         "-I", "jordan.lee", "-n", "codefactory-review", "-s", f"{statement}.sig"],
        input=statement.read_text(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert event.data["key_fingerprint"] in checked.stdout
    assert event.data["statement_digest"].startswith("sha256:")


@pytest.mark.parametrize(
    ("who", "key", "reason"),
    [
        ("jordan.lee", "mallory", "a key of mallory, not of jordan.lee"),
        ("jordan.lee", "stranger", "a key no person in the directory holds"),
        ("dana", "dana", "does not hold the role 'reviewer'"),
        ("nobody", "dana", "no person 'nobody' in the directory"),
    ],
)
def test_a_verdict_signed_by_the_wrong_key_or_person_is_refused_and_audited(
    world: tuple[Factory, People, Path], who: str, key: str, reason: str
) -> None:
    factory, found, tmp_path = world
    run_id = run_in_review(factory, tmp_path)
    if key == "stranger":
        from tests.integration.signed_people import make_key

        private = make_key(tmp_path / "strangers", f"stranger-{run_id}").private
    else:
        private = found.keys[key].private
    body = signed(factory, run_id, who, private)
    with pytest.raises(VerdictRefused, match=reason):
        decide(factory, run_id, who, private, body)
    assert factory.store.require_run(run_id).state is RunState.IN_REVIEW
    assert any(reason in r for r in refusals(factory, run_id))


def test_a_statement_over_another_run_a_stale_time_or_a_replay_is_refused(
    world: tuple[Factory, People, Path],
) -> None:
    factory, found, tmp_path = world
    key = found.keys["jordan.lee"].private
    first, second = run_in_review(factory, tmp_path), run_in_review(factory, tmp_path)
    other = signed(factory, first, "jordan.lee", key)
    with pytest.raises(VerdictRefused, match=f"over run_id '{first}', not '{second}'"):
        decide(factory, second, "jordan.lee", key, other)
    fields = json.loads(signed(factory, second, "jordan.lee", key))
    stale = review_statement(
        **{k: v for k, v in fields.items() if k not in ("_type", "at")},
        at=datetime.now(UTC) - timedelta(minutes=11),
    )
    with pytest.raises(VerdictRefused, match="older than 10 minutes"):
        decide(factory, second, "jordan.lee", key, stale)
    future = review_statement(
        **{k: v for k, v in fields.items() if k not in ("_type", "at")},
        at=datetime.now(UTC) + timedelta(minutes=5),
    )
    with pytest.raises(VerdictRefused, match="in the future"):
        decide(factory, second, "jordan.lee", key, future)
    rejected = dict(fields, verdict="reject")
    body = review_statement(**{k: v for k, v in rejected.items() if k not in ("_type", "at")})
    with pytest.raises(VerdictRefused, match="over verdict 'reject', not 'approve'"):
        decide(factory, second, "jordan.lee", key, body)
    # a replay: the first run's accepted statement, submitted again, is refused
    decide(factory, first, "jordan.lee", key, other)
    with pytest.raises(Exception, match="not waiting for review|used already"):
        decide(factory, first, "jordan.lee", key, other)


@pytest.mark.parametrize(
    ("who", "error"),
    [
        ("priya.shah", SelfApprovalRefused),  # the sponsor
        ("user:Priya.Shah", SelfApprovalRefused),
        ("priya.shah\u200b", NonHumanReviewer),  # a zero-width space is no other person
        ("carol", SelfApprovalRefused),  # caused the trigger
        ("agent:some-other-bot", NonHumanReviewer),
        ("service:deployer", NonHumanReviewer),
    ],
)
def test_parties_to_the_change_and_non_humans_never_approve(
    world: tuple[Factory, People, Path], who: str, error: type[Exception]
) -> None:
    factory, found, tmp_path = world
    run_id = run_in_review(factory, tmp_path, caused_by="user:carol")
    key = found.keys["carol"].private
    body = b'{"_type":"codefactory.review.v1"}'
    with pytest.raises(error):
        factory.review.decide(
            run_id,
            statement=body,
            signature=sign(body, key, REVIEW_NAMESPACE),
            reviewer=who,
            approve=True,
        )
    assert refusals(factory, run_id)
    assert factory.store.require_run(run_id).state is RunState.IN_REVIEW


def test_a_package_changed_after_it_was_built_cannot_be_approved(
    world: tuple[Factory, People, Path],
) -> None:
    factory, found, tmp_path = world
    run_id = run_in_review(factory, tmp_path)
    key = found.keys["jordan.lee"].private
    body = signed(factory, run_id, "jordan.lee", key)
    package = Path(factory.store.require_run(run_id).package_dir)
    (package / "change.patch").write_text("+something else\n")
    with pytest.raises(VerdictRefused, match="change.patch is not as it was built"):
        decide(factory, run_id, "jordan.lee", key, body)


def test_audit_explain_shows_who_caused_the_trigger_and_each_signed_verdict(
    world: tuple[Factory, People, Path],
) -> None:
    from rich.console import Console

    from codefactory.audit.explain import explain_run, render_explanation

    factory, found, tmp_path = world
    run_id = run_in_review(factory, tmp_path, caused_by="user:carol")
    decide(factory, run_id, "jordan.lee", found.keys["jordan.lee"].private)
    explanation = explain_run(factory, run_id, commits=commit_verifier(factory.settings))
    assert explanation is not None
    assert explanation["trigger"]["caused_by"] == "user:carol"
    (approval,) = explanation["approvals"]
    assert approval["key_fingerprint"].startswith("SHA256:")
    assert approval["statement"] == "reviews/1-approve.json"
    console = Console(record=True, width=300)
    render_explanation(console, explanation)
    text = console.export_text()
    assert "caused by:  user:carol" in text and "sponsor:    priya.shah" in text
    assert f"signed with {approval['key_fingerprint']}" in text
    assert approval["statement_digest"] in text


def test_only_waivers_a_security_officer_signed_are_applied(
    world: tuple[Factory, People, Path],
) -> None:
    from codefactory.identity.governance import statement_verifier
    from codefactory.identity.ssh_signatures import GOVERNANCE_NAMESPACE
    from codefactory.identity.statements import rfc3339
    from codefactory.runs.waiver_log import signed_waivers, waiver_statement
    from codefactory.verify.settings import Waiver

    factory, found, _ = world
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)  # standing: age is fine

    def waiver(approver: str, key: str | None, **changes: str) -> Waiver:
        made = Waiver(check="sast", rule="B602", approver=approver, reason="trusted input",
                      signed_at=rfc3339(at))  # fmt: skip
        if key is not None:
            body = waiver_statement(made, at=at)
            made = made.model_copy(
                update={"signature": sign(body, found.keys[key].private, GOVERNANCE_NAMESPACE)}
            )
        return made.model_copy(update=changes)

    good = waiver("sam", "sam")
    given = [good, waiver("sam", None), waiver("dana", "dana"), waiver("sam", "sam", rule="*")]
    verifier = statement_verifier(factory.settings, factory.identity.directory)
    assert signed_waivers(given, verifier, factory.audit) == (good,)
    reasons = [
        str(r.data["reason"])
        for r in factory.audit.events("governance")
        if r.name == "governance-refused"
    ]
    assert any("not an armored SSH signature" in r for r in reasons)
    assert any("does not hold the role 'security'" in r for r in reasons)
    assert any("does not verify over this statement" in r for r in reasons)  # rule widened
    before = len(factory.audit.events("governance"))
    signed_waivers(given, verifier, factory.audit)  # a second start adds no new refusals
    assert len(factory.audit.events("governance")) == before


def test_a_signature_counts_only_in_its_namespace_over_canonical_text(
    world: tuple[Factory, People, Path],
) -> None:
    from codefactory.identity.directory import Role
    from codefactory.identity.ssh_signatures import GOVERNANCE_NAMESPACE
    from codefactory.identity.statements import (
        GOVERNANCE_TYPE,
        StatementRefused,
        governance_statement,
    )

    factory, found, _ = world
    sam = found.keys["sam"].private
    verifier = factory.review.statements
    body = governance_statement(action="agent-suspend", target="agent:bot", person="sam")

    def check(text: bytes, signature: str) -> None:
        verifier.verify(text, signature, statement_type=GOVERNANCE_TYPE, claimed="sam",
                        role=Role.SECURITY, expect={}, used=lambda _: False)  # fmt: skip

    check(body, sign(body, sam, GOVERNANCE_NAMESPACE))
    with pytest.raises(StatementRefused, match="does not verify"):  # a review signature
        check(body, sign(body, sam, REVIEW_NAMESPACE))
    spaced = json.dumps(json.loads(body), indent=1).encode()
    with pytest.raises(StatementRefused, match="not an RFC 8785 canonical JSON object"):
        check(spaced, sign(spaced, sam, GOVERNANCE_NAMESPACE))
    with pytest.raises(StatementRefused, match="_type"):
        review = signed(factory, run_in_review(factory, _), "sam", sam)
        check(review, sign(review, sam, GOVERNANCE_NAMESPACE))


def test_four_eyes_refuses_an_unknown_digest_the_proposer_and_a_second_approval(
    world: tuple[Factory, People, Path], tmp_path: Path
) -> None:
    from codefactory.identity.four_eyes import FourEyesRefused, GovernedFile, content_digest
    from codefactory.identity.statements import StatementVerifier
    from tests.integration.governed import signed as said

    _, found, _ = world
    factory = factory_for(tmp_path, found.directory)  # a fresh ledger: adopted before any run
    directory = factory.identity.directory

    def said_by(person_id: str, action: str, digest: str):  # type: ignore[no-untyped-def]
        return said(directory, person_id, found.keys[person_id].private, action, digest)

    ledger = GovernedFile("testkind", factory.audit, StatementVerifier(directory))
    assert ledger.state("v1", source="f").adopted_now
    unknown = "sha256:" + "0" * 64
    with pytest.raises(FourEyesRefused, match="no testkind proposal"):
        ledger.approve(unknown, statement=said_by("quinn", "testkind-approve", unknown))
    v2 = content_digest("v2")
    digest = ledger.propose("v2", source="f", statement=said_by("pat", "testkind-propose", v2))
    with pytest.raises(FourEyesRefused, match="four eyes: pat proposed"):
        ledger.approve(digest, statement=said_by("pat", "testkind-approve", v2))
    assert ledger.state("v2", source="f").pending
    ledger.approve(digest, statement=said_by("quinn", "testkind-approve", v2))
    assert not ledger.state("v2", source="f").pending
    assert ledger.state("v1", source="f").active_text == "v2"
    with pytest.raises(FourEyesRefused, match="already the active"):
        ledger.approve(digest, statement=said_by("quinn", "testkind-approve", v2))


def test_a_public_key_file_signs_through_ssh_agent(
    world: tuple[Factory, People, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import re
    import signal

    factory, found, tmp_path = world
    started = subprocess.run(["ssh-agent", "-s", "-a", str(tmp_path / "agent.sock")],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    pid = int(re.search(r"SSH_AGENT_PID=(\d+)", started).group(1))  # type: ignore[union-attr]
    try:
        monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "agent.sock"))
        private = found.keys["jordan.lee"].private
        subprocess.run(["ssh-add", "-q", str(private)], check=True, capture_output=True)
        run_id = run_in_review(factory, tmp_path)
        public = private.with_name(private.name + ".pub")
        assert decide(factory, run_id, "jordan.lee", public).state is not RunState.IN_REVIEW
    finally:
        os.kill(pid, signal.SIGTERM)
