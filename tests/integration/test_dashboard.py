"""The reviewers' dashboard over a live server (uvicorn on loopback) and a real OIDC login:
the queue, the run page with every part of the package, the signed verdict with its CSRF
token, and segregation of duties refusing the sponsor on the page and in a forged POST."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from codefactory.domain import RunState
from codefactory.review.errors import FactsRefused
from codefactory.web.app import create_app
from codefactory.web.dashboard.refusals import PER_MINUTE
from tests.browser.world import World, log_in, packaged_run, sign, world
from tests.oidc_helpers import OidcProvider, live_server


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, oidc_provider: OidcProvider
) -> Iterator[tuple[World, str]]:
    w = world(tmp_path_factory.mktemp("dashboard"), oidc_provider)
    with live_server(create_app(w.factory)) as url:
        yield w, url


@contextmanager
def client_of(url: str, sub: str) -> Iterator[httpx.Client]:
    """A browser-like client logged in as OIDC subject `sub`."""
    with httpx.Client(base_url=url, timeout=20) as client:
        log_in(client, sub)
        yield client


def field(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert found, f"no field {name} on the page"
    return found.group(1)


def session_of(client: httpx.Client) -> dict[str, object]:
    """What the signed session cookie carries (Starlette: base64 JSON, then the signature)."""
    payload = client.cookies["codefactory_session"].split(".", 1)[0]
    return dict(json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4))))


def refusals(w: World, run_id: str) -> list[dict[str, object]]:
    return [
        {"actor": e.actor, **e.data}
        for e in w.factory.audit.events(run_id)
        if e.name == "review-refused"
    ]


def test_the_queue_lists_a_run_for_its_reviewer_and_not_for_its_sponsor(
    served: tuple[World, str],
) -> None:
    w, url = served
    run_id = packaged_run(w)
    with client_of(url, "jordan") as jordan, client_of(url, "priya") as priya:
        mine = jordan.get("/").text
        queue = mine.split('id="recent"')[0]
        assert f'href="/runs/{run_id}"' in queue and "<td>review</td>" in queue
        assert "Jordan Lee (user:jordan.lee)" in mine and "/logout" in mine
        theirs = priya.get("/").text
        assert run_id not in theirs.split('id="recent"')[0]
        assert "Nothing waits for you." in theirs
        assert f'href="/runs/{run_id}"' in theirs  # among all recent runs
        assert re.search(r"in_review \d+", theirs)
    with client_of(url, "quinn") as quinn:  # QA: nothing in review is theirs
        assert run_id not in quinn.get("/").text.split('id="recent"')[0]


def test_the_run_page_shows_the_package_escaped(served: tuple[World, str]) -> None:
    w, url = served
    run_id = packaged_run(w)
    with client_of(url, "jordan") as jordan:
        page = jordan.get(f"/runs/{run_id}")
    assert page.status_code == 200
    text = page.text
    assert "<b>2</b>" not in text and "&lt;b&gt;2&lt;/b&gt;" in text  # escaped, then lexed
    assert re.search(r'<span class="gi">\+    return .*&lt;b&gt;', text), "no highlighted add"
    # the finding on the changed line sits in the diff, the other one apart
    diff = text.split('id="diff"')[1].split('id="checks"')[0]
    assert "Q000" in diff and "single quotes &lt;preferred&gt;" in diff
    assert "F401" not in diff
    outside = text.split("Findings outside the changed lines")[1].split("Evidence")[0]
    assert "F401" in outside and "a.py:1" in outside
    assert "evidence/lint.txt" in text
    risk = text.split('id="risk"')[1].split('id="rollback"')[0]
    assert re.search(r"level <strong[^>]*>(low|moderate|high)</strong>", risk)
    rollback = text.split('id="rollback"')[1].split('id="cab"')[0]
    assert "git revert" in rollback or "revert" in rollback.lower()
    cab = text.split('id="cab"')[1].split('id="rationale"')[0]
    assert "<th>backout_plan</th>" in cab and "<th>risk</th>" in cab
    assert "&lt;keep&gt;" in text.split('id="rationale"')[1]
    provenance = text.split('id="provenance"')[1].split('id="traffic"')[0]
    assert "https://slsa.dev/provenance/v1" in provenance
    traffic = text.split('id="traffic"')[1].split('id="proofs"')[0]
    assert "1200 / 340" in traffic and "claude-test" in traffic
    proofs = text.split('id="proofs"')[1].split('id="timeline"')[0]
    assert "verified" in proofs and "NOT PROVEN" not in proofs
    timeline = text.split('id="timeline"')[1]
    for name in ("run-created", "check-completed", "model-called"):
        assert f"<strong>{name}</strong>" in timeline, name


def test_a_file_missing_from_the_package_says_so_and_blocks_the_verdict(
    served: tuple[World, str],
) -> None:
    w, url = served
    run_id = packaged_run(w)
    folder = Path(w.factory.store.require_run(run_id).package_dir)
    (folder / "cab.json").unlink()
    (folder / "rollback.md").unlink()
    with client_of(url, "jordan") as jordan:
        text = jordan.get(f"/runs/{run_id}").text
    assert "cab.json: not in the package, though its manifest lists it." in text
    assert "rollback.md: not in the package, though its manifest lists it." in text
    banner = text.split('id="package-refused"')[1].split("</div>")[0]
    assert "This package does not match what the agent signed" in banner
    assert "cab.json is listed in the manifest but missing" in banner
    assert 'id="ask"' not in text and 'name="signature"' not in text
    assert "&lt;b&gt;2&lt;/b&gt;" in text  # the patch still matches: shown
    with client_of(url, "jordan") as jordan:
        missing = jordan.get("/runs/r-nope")
    assert missing.status_code == 404 and "r-nope" in missing.text


def test_a_rewritten_patch_is_not_shown_and_no_statement_is_issued(
    served: tuple[World, str],
) -> None:
    """The red team's F (issue 14): a data-folder writer shows a benign diff, then restores
    the real one before the reviewer asks for the statement."""
    w, url = served
    run_id = packaged_run(w)
    patch = Path(w.factory.store.require_run(run_id).package_dir) / "change.patch"
    real = patch.read_bytes()
    patch.write_bytes(real.replace(b'return "<b>2</b>"  # changed', b"return 1  # TYPO FIX ONLY"))
    with client_of(url, "jordan") as jordan:
        page = jordan.get(f"/runs/{run_id}").text
        assert "TYPO FIX ONLY" not in page and "&lt;b&gt;2&lt;/b&gt;" not in page
        assert "change.patch is not as it was built" in page.split('id="package-refused"')[1]
        assert 'id="ask"' not in page and 'name="package_digest"' not in page
        attested = w.factory.review.facts.attested(w.factory.store.require_run(run_id))
        asked = jordan.get(
            f"/runs/{run_id}",
            params={"verdict": "approve", "package_digest": attested.package_digest},
        )
        assert asked.status_code == 409 and 'id="statement"' not in asked.text
        assert "does not match what the agent signed" in asked.text
        patch.write_bytes(real)  # restored: the page that was read is not the one signed
        stale = jordan.get(f"/runs/{run_id}", params={"verdict": "approve", "comment": "lgtm"})
        assert stale.status_code == 422 and 'id="statement"' not in stale.text
        assert "no package digest" in stale.text
        shown = jordan.get(f"/runs/{run_id}").text
        assert 'id="package-refused"' not in shown and "&lt;b&gt;2&lt;/b&gt;" in shown
        assert field(shown, "package_digest") == attested.package_digest
    run = w.factory.store.require_run(run_id)
    assert attested.run_id == run_id and attested.commit == run.head_commit
    with pytest.raises(FactsRefused, match="it has no change package"):
        w.factory.review.facts.attested(replace(run, package_dir=""))
    with pytest.raises(FactsRefused, match="the package attestation is for run"):
        w.factory.review.facts.attested(replace(run, id="r-other"))


def test_a_statement_or_verdict_over_another_package_digest_is_409(
    served: tuple[World, str],
) -> None:
    w, url = served
    run_id = packaged_run(w)
    other = "sha256:" + "ab" * 32
    with client_of(url, "jordan") as jordan:
        digest = field(jordan.get(f"/runs/{run_id}").text, "package_digest")
        wrong = jordan.get(
            f"/runs/{run_id}", params={"verdict": "approve", "package_digest": other}
        )
        assert wrong.status_code == 409 and 'id="statement"' not in wrong.text
        assert "the package changed since the page showed it" in wrong.text
        asked = jordan.get(
            f"/runs/{run_id}", params={"verdict": "approve", "package_digest": digest}
        )
        assert asked.status_code == 200 and 'id="statement"' in asked.text
        statement = base64.b64decode(field(asked.text, "statement"))
        assert json.loads(statement)["package_digest"] == digest
        signature = sign(statement, w.reviewer_key, w.tmp_path / f"sig-{run_id}")
        form = {"csrf": field(asked.text, "csrf"), "verdict": "approve",
                "statement": field(asked.text, "statement"), "signature": signature}  # fmt: skip
        moved = jordan.post(f"/runs/{run_id}/verdict", data={**form, "package_digest": other})
        assert moved.status_code == 409 and "the package changed" in moved.text
        bare = jordan.post(f"/runs/{run_id}/verdict", data=form)
        assert bare.status_code == 422 and "no package digest" in bare.text
        assert w.factory.store.require_run(run_id).state is RunState.IN_REVIEW
        done = jordan.post(f"/runs/{run_id}/verdict", data={**form, "package_digest": digest})
        assert done.status_code == 303, done.text[:500]
    assert w.factory.store.require_run(run_id).state is RunState.HANDED_OFF


def test_refused_verdicts_past_a_persons_budget_are_429_and_not_audited_one_by_one(
    served: tuple[World, str],
) -> None:
    w, url = served
    run_id = packaged_run(w)
    if time.time() % 60 > 55:  # the budget is per minute: start in a fresh one
        time.sleep(61 - time.time() % 60)
    with client_of(url, "dana") as dana:  # no role at all
        answers = [
            dana.post(f"/runs/{run_id}/verdict", data={"verdict": "approve"}).status_code
            for _ in range(PER_MINUTE + 5)
        ]
        last = dana.post(f"/runs/{run_id}/verdict", data={"verdict": "approve"})
    assert answers == [403] * PER_MINUTE + [429] * 5
    assert last.status_code == 429 and 0 < int(last.headers["retry-after"]) <= 60
    assert "Too many refused verdicts" in last.text
    assert len(refusals(w, run_id)) == PER_MINUTE  # the rest are counted, not written
    with client_of(url, "jordan") as jordan:  # another person's budget is their own
        page = jordan.get(f"/runs/{run_id}").text
        assert (
            jordan.post(f"/runs/{run_id}/verdict", data={"verdict": "approve"}).status_code == 403
        )
    assert 'id="ask"' in page


def test_the_sponsor_is_refused_on_the_page_and_a_forged_post_is_403_and_audited(
    served: tuple[World, str],
) -> None:
    w, url = served
    run_id = packaged_run(w)
    with client_of(url, "priya") as priya:
        page = priya.get(f"/runs/{run_id}").text
        assert 'id="refusal"' in page and "is the sponsor of run" in page
        assert 'name="signature"' not in page
        asked = priya.get(f"/runs/{run_id}", params={"verdict": "approve"})
        assert asked.status_code == 403 and 'name="signature"' not in asked.text
        assert "is the sponsor of run" in asked.text.split('id="error"')[1]
        # a forged form without the session's token
        forged = priya.post(f"/runs/{run_id}/verdict", data={"verdict": "approve"})
        assert forged.status_code == 403 and "CSRF" in forged.text
        # the token lifted from her own session cookie: the desk still refuses her
        token = str(session_of(priya)["dashboard_csrf"])
        statement = w.factory.review.statement_for(run_id, reviewer="priya.shah", approve=True)
        posted = priya.post(
            f"/runs/{run_id}/verdict",
            data={
                "csrf": token,
                "verdict": "approve",
                "statement": base64.b64encode(statement).decode(),
                "signature": "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----",
            },
        )
        assert posted.status_code == 403, posted.text[:500]
        assert "segregation of duties" in posted.text and "Traceback" not in posted.text
    assert w.factory.store.require_run(run_id).state is RunState.IN_REVIEW
    reasons = [str(r["reason"]) for r in refusals(w, run_id)]
    assert any("CSRF" in r for r in reasons)
    assert any("sponsor" in r for r in reasons)


def test_a_person_without_the_reviewer_role_is_refused(served: tuple[World, str]) -> None:
    w, url = served
    run_id = packaged_run(w)
    with client_of(url, "dana") as dana:
        page = dana.get(f"/runs/{run_id}").text
    assert "does not hold the role &#39;reviewer&#39;" in page
    assert 'name="signature"' not in page


def test_the_reviewer_signs_the_statement_the_page_shows(served: tuple[World, str]) -> None:
    w, url = served
    run_id = packaged_run(w)
    with client_of(url, "jordan") as jordan:
        digest = field(jordan.get(f"/runs/{run_id}").text, "package_digest")
        asked = jordan.get(
            f"/runs/{run_id}",
            params={"verdict": "approve", "comment": "fine <really>", "package_digest": digest},
        )
        assert asked.status_code == 200
        statement = base64.b64decode(field(asked.text, "statement"))
        fields = json.loads(statement)
        assert fields["reviewer"] == "jordan.lee" and fields["comment"] == "fine <really>"
        assert "ssh-keygen -Y sign -f ~/.ssh/id_ed25519 -n codefactory-review" in asked.text
        signature = sign(statement, w.reviewer_key, w.tmp_path / f"sig-{run_id}")
        form = {"csrf": field(asked.text, "csrf"), "verdict": "approve",
                "statement": field(asked.text, "statement"), "package_digest": digest}  # fmt: skip

        # a signature over something else does not count: shown on the page, nothing moves
        other = sign(statement + b" ", w.reviewer_key, w.tmp_path / f"bad-{run_id}")
        bad = jordan.post(f"/runs/{run_id}/verdict", data={**form, "signature": other})
        assert bad.status_code == 422 and 'id="error"' in bad.text, bad.text[:300]
        assert "Traceback" not in bad.text
        assert w.factory.store.require_run(run_id).state is RunState.IN_REVIEW
        # without the session's token: 403
        stolen = jordan.post(
            f"/runs/{run_id}/verdict", data={**form, "csrf": "x" * 43, "signature": signature}
        )
        assert stolen.status_code == 403

        done = jordan.post(f"/runs/{run_id}/verdict", data={**form, "signature": signature})
        assert done.status_code == 303, done.text[:500]
        shown = jordan.get(done.headers["location"]).text
    state = w.factory.store.require_run(run_id).state
    assert state is RunState.HANDED_OFF, w.factory.store.require_run(run_id).reason
    assert f'class="state state-{state.value}">{state.value}</strong>' in shown
    assert "Your signed verdict (approve) was recorded." in shown
    assert 'id="package-refused"' not in shown  # verdicts kept beside it change nothing
    assert "fine &lt;really&gt;" in shown
    (signed,) = [e for e in w.factory.audit.events(run_id) if e.name == "review-signed"]
    assert signed.actor == "user:jordan.lee"


def test_qa_signs_off_an_approved_run_from_its_queue(
    tmp_path: Path, oidc_provider: OidcProvider
) -> None:
    w = world(tmp_path, oidc_provider, review={"sign_offs": ["qa"]})
    run_id = packaged_run(w)
    body = w.factory.review.statement_for(run_id, reviewer="jordan.lee", approve=True)
    w.factory.review.decide(
        run_id, statement=body, signature=sign(body, w.reviewer_key, tmp_path / "r"),
        reviewer="jordan.lee", approve=True,
    )  # fmt: skip
    assert w.factory.store.require_run(run_id).state is RunState.IN_QA
    with live_server(create_app(w.factory)) as url:
        with client_of(url, "jordan") as jordan:  # a reviewer, not QA: nothing to do
            assert run_id not in jordan.get("/").text.split('id="recent"')[0]
            page = jordan.get(f"/runs/{run_id}").text
            assert "does not hold the role &#39;qa&#39;" in page
        with client_of(url, "quinn") as quinn:
            queue = quinn.get("/").text.split('id="recent"')[0]
            assert f'href="/runs/{run_id}"' in queue and "<td>QA sign-off</td>" in queue
            digest = field(quinn.get(f"/runs/{run_id}").text, "package_digest")
            asked = quinn.get(
                f"/runs/{run_id}", params={"verdict": "accept", "package_digest": digest}
            )
            assert asked.status_code == 200, asked.text[:300]
            assert "-n codefactory-sign-off" in asked.text
            statement = base64.b64decode(field(asked.text, "statement"))
            assert json.loads(statement)["stage"] == "qa"
            signature = sign(statement, w.qa_key, tmp_path / "q", "codefactory-sign-off")
            done = quinn.post(
                f"/runs/{run_id}/verdict",
                data={"csrf": field(asked.text, "csrf"), "verdict": "accept",
                      "statement": field(asked.text, "statement"), "signature": signature,
                      "package_digest": digest},
            )  # fmt: skip
            assert done.status_code == 303, done.text[:500]
            shown = quinn.get(done.headers["location"]).text
    assert w.factory.store.require_run(run_id).state is RunState.ACCEPTED
    assert 'class="state state-accepted">accepted</strong>' in shown
    assert "Your signed verdict (accept) was recorded." in shown
    assert 'id="package-refused"' not in shown
