"""A factory with a packaged run waiting for review, for the dashboard's tests (in process
and in the browser): people who log in through the OIDC provider, the reviewer's real SSH
key (ssh-keygen), and a run made by the factory's own parts as
`tests/integration/signed_people.run_in_review` makes one, with check results whose findings
fall on a changed line and outside it, and one model call on record.

`priya.shah` (OIDC subject `priya`, a sponsor who also reviews) sponsors the run;
`jordan.lee` (`jordan`) reviews it;
`dana` (`dana`) holds no role; `quinn` (`quinn`) holds `qa`.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from codefactory.config import Settings
from codefactory.domain import (
    Change,
    ChangeKind,
    CheckResult,
    FileChange,
    Finding,
    Proposal,
    RunState,
    Severity,
    TriggerEvent,
    UnknownEvent,
)
from codefactory.factory import Factory, build_factory
from codefactory.package.port import PackageContents
from tests.directory_helpers import os_account, person, write_directory
from tests.integration.signed_people import git, make_key
from tests.oidc_helpers import CLIENT_SECRET, OidcProvider, submit_authorization

REPOSITORY = "local:/srv/payments"
BASE = "import os\n\n\ndef rate():\n    return 1\n"
CHANGED = 'import os\n\n\ndef rate():\n    return "<b>2</b>"  # changed\n'
SUBJECTS = {"priya.shah": "priya", "jordan.lee": "jordan", "dana": "dana", "quinn": "quinn"}


@dataclass(frozen=True)
class World:
    factory: Factory
    reviewer_key: Path
    tmp_path: Path
    qa_key: Path


def directory(folder: Path, provider: OidcProvider) -> tuple[Path, Path, Path]:
    """The directory file, the reviewer's and the QA person's private keys."""
    key = make_key(folder / "keys", "jordan.lee")
    qa = make_key(folder / "keys", "quinn")

    def oidc(person_id: str) -> str:
        return provider.subject(SUBJECTS[person_id])

    people = {
        "priya.shah": person(
            "Priya Shah", roles=["sponsor", "reviewer"], unix=os_account(), oidc=oidc("priya.shah")
        ),
        "jordan.lee": person(
            "Jordan Lee", roles=["reviewer"], ssh_keys=[key.public], oidc=oidc("jordan.lee")
        ),
        "dana": person("Dana", roles=[], oidc=oidc("dana")),
        "quinn": person("Quinn", roles=["qa"], ssh_keys=[qa.public], oidc=oidc("quinn")),
    }
    return write_directory(folder / "directory.toml", people), key.private, qa.private


def world(tmp_path: Path, provider: OidcProvider, **extra: object) -> World:
    """A factory behind `provider` with the people above (no run yet); `extra` settings
    (`review={"sign_offs": ["qa"]}`) are passed on."""
    found, key, qa = directory(tmp_path / "people", provider)
    settings = Settings(
        data_dir=tmp_path / "data",
        identity={"directory_file": found},  # type: ignore[arg-type]
        web={"oidc_issuer": provider.issuer, "oidc_client_secret": CLIENT_SECRET},  # type: ignore[arg-type]
        **extra,  # type: ignore[arg-type]
    )
    return World(build_factory(settings), key, tmp_path, qa)


def results() -> tuple[CheckResult, ...]:
    """A lint check with a finding on the changed line 5 and one on unchanged line 1."""
    findings = (
        Finding(
            check="lint", rule="Q000", message="single quotes <preferred>",
            severity=Severity.LOW, path="a.py", line=5, blocking=False,
        ),
        Finding(
            check="lint", rule="F401", message="`os` imported but unused",
            severity=Severity.MEDIUM, path="a.py", line=1, blocking=False,
        ),
    )  # fmt: skip
    return (
        CheckResult(
            check="lint", passed=True, findings=findings, evidence_name="lint.txt",
            evidence="a.py:5:12: Q000 single quotes <preferred>\n", summary="2 findings",
        ),
        CheckResult(check="tests", passed=True, summary="3 passed"),
    )  # fmt: skip


def packaged_run(w: World, *, sponsor: str = "priya.shah") -> str:
    """A run of `sponsor` whose signed change waits in review with its package built."""
    factory = w.factory
    event = TriggerEvent(
        source="cli", kind=ChangeKind.FIX_LINT, external_id="PAY-7", actor=sponsor,
        repository=REPOSITORY, title="fix <lint> in rate()", body="",
        received_at=datetime.now(UTC), payload_digest="sha256:" + "0" * 64,
    )  # fmt: skip
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
    work = w.tmp_path / f"work-{run_id}"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    (work / "a.py").write_text(BASE)
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "base", cwd=work)
    base = git("rev-parse", "HEAD", cwd=work)
    branch = f"factory/{run_id}"
    change = Change(files=(FileChange(path="a.py", content=CHANGED.encode()),))
    forge = factory.loop.forge
    head = forge.open_change(
        repo=work, repository=REPOSITORY, base_commit=base, branch=branch, change=change,
        message=f"fix lint\n\nchange\n\nAgent-Id: {agent.id}\nRun-Id: {run_id}\n",
        author_name=agent.display_name, author_email=agent.email,
    )  # fmt: skip
    with factory.store.atomic() as tx:
        for state in (
            RunState.PROVISIONED, RunState.CONTEXT_READY, RunState.PROPOSING,
            RunState.VERIFYING,
        ):  # fmt: skip
            tx.transition(run_id, state)
        tx.append(UnknownEvent(  # a partial record: the fields the run page reads
            kind="model-called", actor="gateway", run_id=run_id,
            payload={"attempt": 1, "outcome": "ok", "model": "claude-test",
                     "input_tokens": 1200, "output_tokens": 340, "cost_usd": 0.0123},
        ))  # fmt: skip
        tx.record_checks(run_id, 1, list(results()))
        tx.transition(run_id, RunState.VERIFIED)
    package = factory.loop.packager.build(
        PackageContents(
            run=factory.store.require_run(run_id), trigger=event,
            proposal=Proposal(
                engine="recipe:lint-fix", engine_version="1",
                rationale="Use a string literal; <keep> the rest.",
            ),
            results=results(), rounds=1,
            patch=forge.diff(repository=REPOSITORY, base_commit=base, head_commit=head),
            commit=head, branch=branch,
            forge_repository=str(forge.repository_path(REPOSITORY)), change=change,
        )
    )  # fmt: skip
    with factory.store.atomic() as tx:
        tx.record_package(package)
        tx.transition(
            run_id, RunState.PACKAGED, head_commit=head, branch=branch,
            package_dir=str(package.directory),
        )  # fmt: skip
        tx.transition(run_id, RunState.IN_REVIEW)
    factory.audit.checkpoint()  # as the factory does when a run comes to rest
    return run_id


def sign(statement: bytes, key: Path, folder: Path, namespace: str = "codefactory-review") -> str:
    """The armored signature `ssh-keygen -Y sign -n <namespace>` makes of `statement` with
    `key`, as the reviewer runs the page's command."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "statement.json"
    path.write_bytes(statement)
    subprocess.run(
        ["ssh-keygen", "-q", "-Y", "sign", "-f", str(key), "-n", namespace, str(path)],
        check=True, capture_output=True,
    )  # fmt: skip
    signature = path.with_name("statement.json.sig")
    text = signature.read_text()
    signature.unlink()
    return text


HTML = {"Accept": "text/html"}


def log_in(client: httpx.Client, sub: str) -> None:
    """A browser's login as OIDC subject `sub`: `/` → `/login` → the provider's form →
    the callback, which sets the session cookie on `client`."""
    start = client.get("/", headers=HTML)
    assert start.status_code == 303, start.text[:300]
    to_provider = client.get(start.headers["location"])
    assert to_provider.status_code == 302, to_provider.text[:300]
    done = client.get(submit_authorization(to_provider.headers["location"], sub))
    assert done.status_code == 303, done.text[:300]
