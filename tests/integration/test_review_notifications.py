"""A run resting in review tells its sponsor and its reviewers: a direct message through a
local stand-in of Slack's Web API (`chat.postMessage`, Slack's answer shapes) and an e-mail
through a real SMTP server on the loopback (aiosmtpd); every message an audit event, a
channel's failure an event that never fails the run."""

from __future__ import annotations

import io
import json
import socket
import threading
import zipfile
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from codefactory.config import Settings
from codefactory.domain import RunState
from codefactory.factory import build_factory
from codefactory.review.settings import (
    ChangeSettings,
    EmailSettings,
    JiraUpdateSettings,
    NotifySettings,
    SlackSettings,
)
from codefactory.runs.tickets import accept_ticket
from tests.acceptance.conftest import TEMPLATE
from tests.conftest import data_dir_sharing_cache, sample_service
from tests.context_helpers import vendor_settings
from tests.context_standins.atlassian import serve_atlassian
from tests.context_standins.vendors import ServiceNowStandin
from tests.directory_helpers import person, standard_directory

pytestmark = pytest.mark.usefixtures("bwrap_available")
TOKEN = "xoxb-test-bot-token"


class SlackStandIn:
    """`POST /api/chat.postMessage` as Slack answers it: 200 with `ok`, `channel`, `ts`, or
    200 with `{"ok": false, "error": ...}`; 401-free, like Slack (a bad token is `invalid_auth`)."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.error = ""
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    answer: dict[str, Any] = {"ok": False, "error": "invalid_auth"}
                elif standin.error:
                    answer = {"ok": False, "error": standin.error}
                elif self.path != "/api/chat.postMessage":
                    answer = {"ok": False, "error": "unknown_method"}
                else:
                    standin.posts.append(body)
                    answer = {"ok": True, "channel": "D0123", "ts": "1733000000.000100"}
                raw = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/api"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def channels() -> Iterator[tuple[SlackStandIn, Mailbox, int]]:
    slack = SlackStandIn()
    mailbox = Mailbox()
    with socket.socket() as probe:  # aiosmtpd checks its own port: give it a free one
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    smtp = Controller(mailbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        yield slack, mailbox, port
    finally:
        smtp.stop()
        slack.stop()


def test_the_sponsor_and_the_reviewers_are_told_and_each_message_is_audited(
    tmp_path: Path,
    uv_cache: Path,
    channels: tuple[SlackStandIn, Mailbox, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slack, mailbox, smtp_port = channels
    directory = standard_directory(
        tmp_path / "people",
        {
            "alice": person(
                "Alice", roles=["reviewer"], email="alice@bank.example", slack="U0ALICE"
            ),
            "carol": person("Carol", roles=["reviewer"], email="carol@bank.example"),
        },
    )
    monkeypatch.setenv("CODEFACTORY_IDENTITY__DIRECTORY_FILE", str(directory))
    token = tmp_path / "slack-token"
    token.write_text(TOKEN + "\n")
    notify = NotifySettings(
        slack=SlackSettings(base_url=slack.base_url, token_file=token),
        email=EmailSettings(host="127.0.0.1", port=smtp_port, sender="factory@bank.example"),
    )
    settings = Settings(data_dir=data_dir_sharing_cache(tmp_path / "data", uv_cache), notify=notify)
    factory = build_factory(settings)
    repo = sample_service(tmp_path / "sample-service")
    payload = (TEMPLATE / "tickets" / "SVC-102.json").read_bytes()
    run = accept_ticket(factory, payload=payload, repo=repo)
    assert run.state is RunState.IN_REVIEW, run.reason

    # Slack: the sponsor (priya.shah, U2147483697) and alice, the one reviewer with an id
    assert sorted(post["channel"] for post in slack.posts) == ["U0ALICE", "U2147483697"]
    assert all(run.id in post["text"] for post in slack.posts)
    # e-mail: the sponsor and both reviewers
    to = sorted(address for rcpt, _ in mailbox.messages for address in rcpt)
    assert to == ["alice@bank.example", "carol@bank.example", "priya.shah@bank.example"]
    message = message_from_bytes(mailbox.messages[0][1])
    assert message["From"] == "factory@bank.example" and run.id in str(message["Subject"])
    sent = [e.data for e in factory.audit.events(run.id) if e.name == "notification-sent"]
    assert sorted((e["channel"], e["to"]) for e in sent) == [
        ("email", "user:alice"),
        ("email", "user:carol"),
        ("email", "user:priya.shah"),
        ("slack", "user:alice"),
        ("slack", "user:priya.shah"),
    ]

    slack.error = "channel_not_found"  # Slack's own refusal: named, audited, run unharmed
    second = accept_ticket(factory, payload=payload, repo=repo)
    assert second.state is RunState.IN_REVIEW, second.reason
    failed = [e.data for e in factory.audit.events(second.id) if e.name == "notification-failed"]
    assert {e["channel"] for e in failed} == {"slack"}
    assert all("channel_not_found" in e["error"] for e in failed)


def test_the_jira_ticket_hears_each_milestone_and_a_refused_transition_is_audited(
    tmp_path: Path, uv_cache: Path
) -> None:
    ticket = json.loads((TEMPLATE / "tickets" / "SVC-102.json").read_text())
    ticket["key"] = "PAY-8"  # an issue the Atlassian stand-in knows
    with serve_atlassian() as site:
        notify = NotifySettings(
            jira=JiraUpdateSettings(milestones=["in_review"], transitions={"in_review": "31"})
        )
        settings = Settings(
            data_dir=data_dir_sharing_cache(tmp_path / "data", uv_cache),
            jira=site.service(tmp_path),
            notify=notify,
        )
        factory = build_factory(settings)
        repo = sample_service(tmp_path / "sample-service")
        run = accept_ticket(factory, payload=json.dumps(ticket).encode(), repo=repo)
        assert run.state is RunState.IN_REVIEW, run.reason
        comment, transition = site.updates
        assert comment[:2] == ("PAY-8", "comment") and transition[:2] == ("PAY-8", "transitions")
        assert run.id in json.dumps(comment[2]["body"]) and comment[2]["body"]["type"] == "doc"
        assert transition[2] == {"transition": {"id": "31"}}
        [updated] = [e.data for e in factory.audit.events(run.id) if e.name == "jira-updated"]
        assert updated["done"] == ["comment", "transition 31"]

        refused = settings.model_copy(
            update={
                "notify": NotifySettings(
                    jira=JiraUpdateSettings(
                        milestones=["in_review"], transitions={"in_review": "99"}
                    )
                )
            }
        )
        again = accept_ticket(
            build_factory(refused), payload=json.dumps(ticket).encode(), repo=repo
        )
        assert again.state is RunState.IN_REVIEW, again.reason  # a refused update fails nothing
        [failed] = [
            e.data for e in factory.audit.events(again.id) if e.name == "jira-update-failed"
        ]
        assert failed["done"] == ["comment"] and "400" in failed["error"]


def test_a_packaged_run_files_its_change_request_with_the_package_attached(
    tmp_path: Path, uv_cache: Path
) -> None:
    servicenow = ServiceNowStandin()
    servicenow.start()
    try:
        fields = vendor_settings(tmp_path / "secrets", servicenow=servicenow)
        settings = Settings(
            data_dir=data_dir_sharing_cache(tmp_path / "data", uv_cache),
            servicenow=fields["servicenow"],
            changes=ChangeSettings(file_in_servicenow=True, assignment_group="CAB-Payments"),
        )
        factory = build_factory(settings)
        repo = sample_service(tmp_path / "sample-service")
        payload = (TEMPLATE / "tickets" / "SVC-102.json").read_bytes()
        run = accept_ticket(factory, payload=payload, repo=repo)
        assert run.state is RunState.IN_REVIEW, run.reason
        [change] = servicenow.created
        cab = json.loads((Path(run.package_dir) / "cab.json").read_text())
        for key in ("type", "risk", "impact", "justification", "backout_plan", "test_plan"):
            assert change[key] == str(cab[key]), key
        assert change["assignment_group"] == "CAB-Payments"
        assert change["start_date"] < change["end_date"]  # the planned window, UTC
        assert json.loads(change["u_codefactory"])["run_id"] == run.id
        [(params, archive)] = servicenow.attachments
        assert params["table_name"] == "change_request" and params["table_sys_id"]
        names = zipfile.ZipFile(io.BytesIO(archive)).namelist()
        assert {"cab.json", "summary.md", "change.patch"} <= set(names)
        [filed] = [e.data for e in factory.audit.events(run.id) if e.name == "change-request-filed"]
        assert filed["number"] == "CHG0030001"

        servicenow.fail_next(500)  # the instance is down: named, audited, the run still waits
        second = accept_ticket(factory, payload=payload, repo=repo)
        assert second.state is RunState.IN_REVIEW, second.reason
        [failed] = [
            e.data for e in factory.audit.events(second.id) if e.name == "change-request-failed"
        ]
        assert "500" in failed["error"]
    finally:
        servicenow.stop()


def test_qa_uat_and_the_sponsor_are_told_along_the_regulated_track(
    tmp_path: Path, channels: tuple[SlackStandIn, Mailbox, int]
) -> None:
    """In review the reviewers; approved and waiting for the CAB the sponsor; in QA the `qa`
    people, in UAT the `uat` people (never the sponsor or who caused the trigger, though they
    hold the role); accepted or rejected the sponsor, with the reason."""
    from codefactory.context.credentials import vendor_client
    from codefactory.identity.ssh_signatures import REVIEW_NAMESPACE, sign
    from codefactory.identity.statements import SIGN_OFF_NAMESPACE
    from codefactory.review.change_requests import ChangeFiling
    from codefactory.review.settings import ReviewTrackSettings
    from tests.directory_helpers import write_directory
    from tests.integration.signed_people import factory_for, make_key, run_in_review

    slack, mailbox, smtp_port = channels
    folder = tmp_path / "people"
    keys = {name: make_key(folder / "keys", name) for name in ("jordan.lee", "quinn", "uma")}
    roles = {
        "priya.shah": ["sponsor", "qa", "uat"],  # holds qa and uat: still never asked
        "jordan.lee": ["reviewer"],
        "carol": ["reviewer", "qa"],  # causes the trigger: never asked
        "quinn": ["qa"],
        "uma": ["uat"],
        "dana": [],
    }
    directory = write_directory(
        folder / "directory.toml",
        {
            name: person(
                name,
                roles=r,
                email=f"{name}@bank.example",
                ssh_keys=[keys[name].public] if name in keys else [],
                **({"slack": "U0QUINN"} if name == "quinn" else {}),
            )
            for name, r in roles.items()
        },
    )
    token = tmp_path / "slack-token"
    token.write_text(TOKEN + "\n")
    servicenow = ServiceNowStandin()
    servicenow.start()
    try:
        fields = vendor_settings(tmp_path / "secrets", servicenow=servicenow)
        factory = factory_for(
            tmp_path,
            directory,
            notify=NotifySettings(
                slack=SlackSettings(base_url=slack.base_url, token_file=token),
                email=EmailSettings(host="127.0.0.1", port=smtp_port, sender="f@bank.example"),
            ),
            servicenow=fields["servicenow"],
            changes=ChangeSettings(file_in_servicenow=True),
            review=ReviewTrackSettings(sign_offs=["qa", "uat"]),
        )

        def told(run_id: str) -> list[tuple[str, str]]:
            sent = [e.data for e in factory.audit.events(run_id) if e.name == "notification-sent"]
            return sorted({(e["to"].removeprefix("user:"), e["asked"]) for e in sent})

        def sign_off(run_id: str, who: str, stage: str, accept: bool, reason: str = "") -> None:
            body = factory.review.sign_off_statement(
                run_id, stage=stage, signer=who, accept=accept, reason=reason
            )
            factory.review.sign_off(run_id, stage=stage, statement=body, signer=who,
                                    signature=sign(body, keys[who].private, SIGN_OFF_NAMESPACE),
                                    accept=accept)  # fmt: skip

        def review(run_id: str, approve: bool) -> None:
            body = factory.review.statement_for(run_id, reviewer="jordan.lee", approve=approve,
                                                comment="" if approve else "too broad")  # fmt: skip
            factory.review.decide(run_id, statement=body, reviewer="jordan.lee", approve=approve,
                                  signature=sign(body, keys["jordan.lee"].private,
                                                 REVIEW_NAMESPACE))  # fmt: skip

        # a normal change (not a recipe's), so the CAB must approve it
        run_id = run_in_review(
            factory, tmp_path, caused_by="user:carol", engine="agent:pydantic-ai"
        )
        run = factory.store.require_run(run_id)
        ChangeFiling(settings=factory.settings.changes, record=factory.store.append,
                     client=lambda: vendor_client("servicenow", factory.settings.servicenow),
                     )(run, Path(run.package_dir))  # fmt: skip
        # run_in_review does not pass through the loop's observer: tell as the loop would
        factory.loop.observer(run_id, RunState.IN_REVIEW, "")  # type: ignore[misc]
        assert told(run_id) == [("jordan.lee", "review"), ("priya.shah", "ready")]

        review(run_id, approve=True)
        assert factory.store.require_run(run_id).state is RunState.APPROVED
        assert ("priya.shah", "cab") in told(run_id)
        [cab_mail] = [
            message_from_bytes(raw)
            for rcpt, raw in mailbox.messages
            if rcpt == ["priya.shah@bank.example"] and b" cab" in raw.split(b"\n\n")[0]
        ]
        assert "waits for the CAB's approval" in cab_mail.get_payload()
        assert "waiting for CAB approval of CHG" in cab_mail.get_payload()

        [change] = [e.data for e in factory.audit.events(run_id)
                    if e.name == "change-request-filed"]  # fmt: skip
        servicenow.approvals[str(change["sys_id"])] = "approved"
        assert factory.review.hand_off(run_id).state is RunState.IN_QA
        qa = [t for t in told(run_id) if t[1] == "qa"]
        assert qa == [("quinn", "qa")]  # not priya (sponsor), not carol (caused the trigger)
        assert [p["channel"] for p in slack.posts if "QA sign-off" in p["text"]] == ["U0QUINN"]

        sign_off(run_id, "quinn", "qa", accept=True)
        assert [t for t in told(run_id) if t[1] == "uat"] == [("uma", "uat")]
        sign_off(run_id, "uma", "uat", accept=True)
        assert factory.store.require_run(run_id).state is RunState.ACCEPTED
        assert [t for t in told(run_id) if t[1] == "accepted"] == [("priya.shah", "accepted")]

        # a rejection in review tells the sponsor, with the reviewer's reason
        rejected = run_in_review(factory, tmp_path, engine="recipe:lint-fix")
        review(rejected, approve=False)
        assert told(rejected) == [("priya.shah", "rejected")]
        [mail] = [
            message_from_bytes(raw)
            for rcpt, raw in mailbox.messages
            if rejected.encode() in raw and b"rejected" in raw.split(b"\n\n")[0]
        ]
        assert "rejected by jordan.lee: too broad" in mail.get_payload()
    finally:
        servicenow.stop()
