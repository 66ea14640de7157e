"""The regulated track after approval: a forge approval counted by the same rules as a signed
verdict, then QA and UAT as signed sign-offs (real ssh-keygen keys) on the way to `accepted`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from codefactory.audit.canonical import canonical_json
from codefactory.domain import RunState
from codefactory.factory import Factory
from codefactory.identity.ssh_signatures import REVIEW_NAMESPACE, sign
from codefactory.identity.statements import SIGN_OFF_NAMESPACE
from codefactory.review.errors import NonHumanReviewer, SelfApprovalRefused
from codefactory.review.settings import ReviewTrackSettings
from codefactory.runs.review import ForgeApprovalRefused, ReviewNotOpen
from codefactory.runs.sign_offs import SignOffNotOpen, SignOffRefused
from tests.directory_helpers import os_account, person, write_directory
from tests.integration.signed_people import Key, factory_for, make_key, run_in_review

ROLES = {
    "jordan.lee": ["reviewer"],
    "carol": ["reviewer", "qa"],  # causes the trigger in some runs
    "quinn": ["qa"],
    "uma": ["uat"],
    "dana": [],
    "vic": ["reviewer", "qa", "uat"],  # holds every role: still one stage only
    "quentin": ["qa", "uat"],
}


def track_people(tmp_path: Path) -> tuple[Path, dict[str, Key]]:
    """priya (sponsor, with qa and uat too: she must still never sign off her own run),
    a reviewer, QA and UAT people, and dana with no role; each with a key."""
    folder = tmp_path / "people"
    keys = {name: make_key(folder / "keys", name) for name in [*ROLES, "priya.shah"]}
    entries = {
        "priya.shah": person(
            "Priya Shah",
            roles=["sponsor", "qa", "uat"],
            unix=os_account(),
            ssh_keys=[keys["priya.shah"].public],
        ),
        **{name: person(name, roles=r, ssh_keys=[keys[name].public]) for name, r in ROLES.items()},
    }
    return write_directory(folder / "directory.toml", entries), keys


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Factory, dict[str, Key], Path]:
    tmp_path = tmp_path_factory.mktemp("review-track")
    directory, keys = track_people(tmp_path)
    track = ReviewTrackSettings(sign_offs=["qa", "uat"])
    return factory_for(tmp_path, directory, review=track), keys, tmp_path


def approve(factory: Factory, run_id: str, keys: dict[str, Key], who: str = "jordan.lee") -> None:
    body = factory.review.statement_for(run_id, reviewer=who, approve=True)
    factory.review.decide(
        run_id,
        statement=body,
        signature=sign(body, keys[who].private, REVIEW_NAMESPACE),
        reviewer=who,
        approve=True,
    )


def sign_off(
    factory: Factory,
    run_id: str,
    keys: dict[str, Key],
    who: str,
    stage: str,
    *,
    accept: bool = True,
    reason: str = "",
    key: str = "",
):  # type: ignore[no-untyped-def]
    body = factory.review.sign_off_statement(
        run_id, stage=stage, signer=who, accept=accept, reason=reason
    )
    return factory.review.sign_off(
        run_id,
        stage=stage,
        statement=body,
        signature=sign(body, keys[key or who].private, SIGN_OFF_NAMESPACE),
        signer=who,
        accept=accept,
    )


def events(factory: Factory, run_id: str, name: str) -> list[dict[str, object]]:
    return [dict(e.data) for e in factory.audit.events(run_id) if e.name == name]


def test_a_forge_approval_by_a_directory_reviewer_moves_the_run_and_hands_it_to_qa(
    world: tuple[Factory, dict[str, Key], Path],
) -> None:
    factory, _, tmp_path = world
    run_id = run_in_review(factory, tmp_path)
    head = factory.store.require_run(run_id).head_commit
    run = factory.review.record_forge_approval(
        run_id, person_id="Jordan.Lee", commit=head, forge="github", request="7",
        review_id="80",
    )  # fmt: skip
    assert run.state is RunState.IN_QA, run.reason
    [recorded] = events(factory, run_id, "forge-approval-recorded")
    assert recorded["commit"] == head and recorded["review_id"] == "80"
    states = [c.state for c in run.history]
    assert states[-2:] == [RunState.APPROVED, RunState.IN_QA]
    approval = json.loads((Path(run.package_dir) / "approval.json").read_text())
    assert approval["approved_by"] == "jordan.lee" and approval["forge"] == "github"
    assert approval["commit"] == head and approval["cab_approval"] == "not required"


@pytest.mark.parametrize(
    ("who", "commit", "error", "reason"),
    [
        ("priya.shah", "head", SelfApprovalRefused, "is the sponsor"),
        ("carol", "head", SelfApprovalRefused, "person who caused the trigger"),
        ("dana", "head", ForgeApprovalRefused, "does not hold the role 'reviewer'"),
        ("nobody", "head", ForgeApprovalRefused, "no person 'nobody' in the directory"),
        ("agent:codefactory-recipes", "head", SelfApprovalRefused, "is the agent"),
        ("service:deployer", "head", NonHumanReviewer, "non-humans never approve"),
        ("jordan.lee", "0" * 40, ForgeApprovalRefused, "not the signed head commit"),
    ],
)
def test_a_forge_approval_that_does_not_count_is_refused_and_audited(
    world: tuple[Factory, dict[str, Key], Path],
    who: str,
    commit: str,
    error: type[Exception],
    reason: str,
) -> None:
    factory, _, tmp_path = world
    run_id = run_in_review(factory, tmp_path, caused_by="user:carol")
    head = factory.store.require_run(run_id).head_commit
    with pytest.raises(error, match=reason):
        factory.review.record_forge_approval(
            run_id, person_id=who, commit=head if commit == "head" else commit,
            forge="gitlab", request="!3", review_id="1",
        )  # fmt: skip
    assert factory.store.require_run(run_id).state is RunState.IN_REVIEW
    [refused] = events(factory, run_id, "forge-approval-refused")
    assert reason in str(refused["reason"]) and refused["forge"] == "gitlab"


def test_a_forge_approval_replayed_or_of_a_run_not_in_review_is_refused(
    world: tuple[Factory, dict[str, Key], Path],
) -> None:
    factory, _, tmp_path = world
    run_id = run_in_review(factory, tmp_path)
    head = factory.store.require_run(run_id).head_commit
    given = {"person_id": "jordan.lee", "commit": head, "forge": "github", "request": "9",
             "review_id": "90"}  # fmt: skip
    factory.review.record_forge_approval(run_id, **given)
    with pytest.raises(ReviewNotOpen, match="not waiting for review"):
        factory.review.record_forge_approval(run_id, **given)
    assert events(factory, run_id, "forge-approval-refused")


def test_qa_then_uat_sign_offs_accept_the_change_each_kept_and_checkable(
    world: tuple[Factory, dict[str, Key], Path],
) -> None:
    factory, keys, tmp_path = world
    run_id = run_in_review(factory, tmp_path)
    approve(factory, run_id, keys)
    assert factory.store.require_run(run_id).state is RunState.IN_QA
    with pytest.raises(SignOffNotOpen, match="not `in_uat`"):
        sign_off(factory, run_id, keys, "uma", "uat")
    run = sign_off(factory, run_id, keys, "quinn", "qa")
    assert run.state is RunState.IN_UAT and "QA signed off by quinn" in run.reason
    run = sign_off(factory, run_id, keys, "uma", "uat")
    assert run.state is RunState.ACCEPTED and run.reason == "accepted: UAT signed off by uma"
    signed = events(factory, run_id, "sign-off-signed")
    assert [(s["stage"], s["verdict"]) for s in signed] == [("qa", "accept"), ("uat", "accept")]
    package = Path(run.package_dir)
    statement = package / str(signed[0]["statement"])
    assert statement == package / "reviews" / "2-qa-accept.json"
    checked = subprocess.run(
        ["ssh-keygen", "-Y", "verify", "-f", str(statement.with_suffix(".allowed_signers")),
         "-I", "quinn", "-n", SIGN_OFF_NAMESPACE, "-s", f"{statement}.sig"],
        input=statement.read_text(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr


def test_the_sponsor_and_people_without_the_role_never_sign_off(
    world: tuple[Factory, dict[str, Key], Path],
) -> None:
    factory, keys, tmp_path = world
    run_id = run_in_review(factory, tmp_path, caused_by="user:carol")
    approve(factory, run_id, keys)
    with pytest.raises(SelfApprovalRefused, match="is the sponsor"):
        sign_off(factory, run_id, keys, "priya.shah", "qa")
    with pytest.raises(SelfApprovalRefused, match="caused the trigger"):
        sign_off(factory, run_id, keys, "carol", "qa")
    with pytest.raises(SignOffRefused, match="does not hold the role 'qa'"):
        sign_off(factory, run_id, keys, "uma", "qa")
    with pytest.raises(SignOffRefused, match="a key of uma, not of quinn"):
        sign_off(factory, run_id, keys, "quinn", "qa", key="uma")
    reasons = [str(r["reason"]) for r in events(factory, run_id, "sign-off-refused")]
    assert len(reasons) == 4 and "sponsor" in reasons[0]
    assert factory.store.require_run(run_id).state is RunState.IN_QA


def test_a_qa_rejection_ends_the_run_rejected_with_its_reason(
    world: tuple[Factory, dict[str, Key], Path],
) -> None:
    factory, keys, tmp_path = world
    run_id = run_in_review(factory, tmp_path)
    approve(factory, run_id, keys)
    with pytest.raises(SignOffRefused, match="a rejection names its reason"):
        sign_off(factory, run_id, keys, "quinn", "qa", accept=False)
    run = sign_off(factory, run_id, keys, "quinn", "qa", accept=False, reason="login fails")
    assert run.state is RunState.REJECTED
    assert run.reason == "rejected in QA by quinn: login fails"
    with pytest.raises(SignOffNotOpen, match="`rejected`"):
        sign_off(factory, run_id, keys, "quinn", "qa")


def test_the_cli_signs_off_with_a_key_or_a_statement_signed_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from codefactory.cli import app
    from tests.directory_helpers import DIRECTORY_ENV

    directory, keys = track_people(tmp_path)
    monkeypatch.setenv(DIRECTORY_ENV, str(directory))
    monkeypatch.setenv("CODEFACTORY_REVIEW__SIGN_OFFS", '["qa","uat"]')
    factory = factory_for(tmp_path, directory, review=ReviewTrackSettings(sign_offs=["qa", "uat"]))
    run_id = run_in_review(factory, tmp_path)
    runner = CliRunner()

    def cli(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, ["--data-dir", str(tmp_path / "data"), *args])
        assert result.exit_code == code, (args, result.output)
        return result.output

    key = {name: str(k.private) for name, k in keys.items()}
    assert "in_qa" in cli("review", "approve", run_id, "--as", "jordan.lee", "--key",
                          key["jordan.lee"])  # fmt: skip
    assert "not approved and waiting to be handed off" in cli("review", "hand-off", run_id, code=1)
    assert "a name alone proves nothing" in cli(
        "review", "sign-off", run_id, "--stage", "qa", "--as", "quinn", code=1
    )
    statement = tmp_path / "qa.json"
    statement.write_text(
        cli("review", "sign-off-statement", run_id, "--stage", "qa", "--as", "quinn")
    )
    subprocess.run(
        ["ssh-keygen", "-Y", "sign", "-f", key["quinn"], "-n", SIGN_OFF_NAMESPACE, str(statement)],
        check=True, capture_output=True,
    )  # fmt: skip
    signed = ["--statement", str(statement), "--signature", f"{statement}.sig"]
    assert "in_uat" in cli("review", "sign-off", run_id, "--stage", "qa", "--as", "quinn", *signed)
    assert "is the sponsor" in cli("review", "sign-off", run_id, "--stage", "uat", "--as",
                                   "priya.shah", "--key", key["priya.shah"], code=1)  # fmt: skip
    rejected = cli("review", "sign-off", run_id, "--stage", "uat", "--as", "uma", "--key",
                   key["uma"], "--reject", "--reason", "the report totals are wrong")  # fmt: skip
    assert "rejected in UAT by uma: the report totals are wrong" in rejected


def test_the_track_settings_and_the_sign_off_statement_refuse_what_they_do_not_know(
    tmp_path: Path,
) -> None:
    from pydantic import ValidationError

    from codefactory.identity.statements import sign_off_statement
    from codefactory.review.change_requests import needs_cab

    with pytest.raises(ValidationError, match="qa first"):
        ReviewTrackSettings(sign_offs=["uat", "qa"])
    with pytest.raises(ValidationError):
        ReviewTrackSettings(sign_offs=["security"])  # type: ignore[list-item]
    fields = {"run_id": "r", "commit": "c", "package_digest": "d", "signer": "quinn"}
    with pytest.raises(ValueError, match="stage must be one of"):
        sign_off_statement(stage="prod", verdict="accept", **fields)
    with pytest.raises(ValueError, match="verdict must be one of"):
        sign_off_statement(stage="qa", verdict="approve", **fields)
    assert needs_cab(tmp_path)  # no readable cab.json: the CAB decides
    (tmp_path / "cab.json").write_text('{"type": "standard"}')
    assert not needs_cab(tmp_path)


def test_a_stage_that_is_not_configured_takes_no_sign_off(
    world: tuple[Factory, dict[str, Key], Path], tmp_path: Path
) -> None:
    factory, keys, _ = world
    directory = factory.settings.identity.directory_file
    assert directory is not None
    qa_only = factory_for(tmp_path, directory, review=ReviewTrackSettings(sign_offs=["qa"]))
    run_id = run_in_review(qa_only, tmp_path)
    approve(qa_only, run_id, keys)
    with pytest.raises(SignOffNotOpen, match="UAT sign-off is not a stage here"):
        sign_off(qa_only, run_id, keys, "uma", "uat")
    assert sign_off(qa_only, run_id, keys, "quinn", "qa").state is RunState.ACCEPTED


def test_whoever_approved_or_signed_an_earlier_stage_never_signs_a_later_one(
    world: tuple[Factory, dict[str, Key], Path],
) -> None:
    factory, keys, tmp_path = world
    run_id = run_in_review(factory, tmp_path)
    approve(factory, run_id, keys, who="vic")
    with pytest.raises(SelfApprovalRefused, match="vic is the reviewer who approved it"):
        sign_off(factory, run_id, keys, "vic", "qa")
    assert sign_off(factory, run_id, keys, "quentin", "qa").state is RunState.IN_UAT
    with pytest.raises(SelfApprovalRefused, match="quentin is the qa signer"):
        sign_off(factory, run_id, keys, "quentin", "uat")
    with pytest.raises(SelfApprovalRefused, match="reviewer who approved it"):
        sign_off(factory, run_id, keys, "vic", "uat")
    # a statement made without asking the factory is refused on its signature, and audited
    fields = json.loads(
        factory.review.sign_off_statement(run_id, stage="uat", signer="uma", accept=True)
    )
    body = canonical_json({**fields, "signer": "quentin"})
    with pytest.raises(SelfApprovalRefused, match="quentin is the qa signer"):
        factory.review.sign_off(
            run_id, stage="uat", statement=body, signer="quentin", accept=True,
            signature=sign(body, keys["quentin"].private, SIGN_OFF_NAMESPACE),
        )  # fmt: skip
    (refused,) = events(factory, run_id, "sign-off-refused")
    assert "segregation of duties" in str(refused["reason"])
    assert factory.store.require_run(run_id).state is RunState.IN_UAT
    assert sign_off(factory, run_id, keys, "uma", "uat").state is RunState.ACCEPTED


def test_a_key_that_approved_signs_no_later_stage_under_another_name(tmp_path: Path) -> None:
    """The key moved in the directory from the reviewer to a QA person after the approval:
    the same key signing again is the same hands, whatever name it is listed under now."""
    folder = tmp_path / "people"
    keys = {name: make_key(folder / "keys", name) for name in ("priya.shah", "rex", "quinn")}
    sponsor = person("Priya Shah", roles=["sponsor"], unix=os_account(),
                     ssh_keys=[keys["priya.shah"].public])  # fmt: skip

    def directory(rex_key: str, quinn_key: str) -> Path:
        return write_directory(folder / "directory.toml", {
            "priya.shah": sponsor,
            "rex": person("Rex", roles=["reviewer"], ssh_keys=[rex_key]),
            "quinn": person("Quinn", roles=["qa"], ssh_keys=[quinn_key]),
        })  # fmt: skip

    path = directory(keys["rex"].public, keys["quinn"].public)
    factory = factory_for(tmp_path, path, review=ReviewTrackSettings(sign_offs=["qa"]))
    run_id = run_in_review(factory, tmp_path)
    approve(factory, run_id, keys, who="rex")
    assert factory.store.require_run(run_id).state is RunState.IN_QA
    directory(keys["quinn"].public, keys["rex"].public)  # rex's key is now listed as quinn's
    with pytest.raises(SelfApprovalRefused, match="reviewer who approved it"):
        sign_off(factory, run_id, keys, "quinn", "qa", key="rex")
    assert factory.store.require_run(run_id).state is RunState.IN_QA
