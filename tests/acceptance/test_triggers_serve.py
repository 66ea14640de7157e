"""`codefactory serve` as a subprocess: a signed GitHub delivery becomes a run that the
workers drive through the real loop to review; and `codefactory policy check|validate`."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.acceptance.conftest import CLI, TEMPLATE, Cli
from tests.conftest import SHARED_FIXTURES, make_repo
from tests.fixtures.webhooks.signed import SECRETS, headers
from tests.oidc_helpers import OidcProvider, oidc_env, web_headers

LABELED = SHARED_FIXTURES / "webhooks" / "github" / "issues" / "labeled.payload.json"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def login(oidc_provider: OidcProvider) -> dict[str, str]:
    """The bearer token the runs API and the OpenAPI document need."""
    return web_headers(oidc_provider)


@pytest.fixture
def server(cli: Cli, tmp_path: Path, oidc_provider: OidcProvider) -> Iterator[str]:
    service = TEMPLATE / "sample-service"
    files = {str(p.relative_to(service)): p.read_text() for p in service.rglob("*") if p.is_file()}
    files["requirements.txt"] = "idna==3.7\n"
    make_repo(tmp_path / "sample-service", files)
    settings = tmp_path / "triggers.toml"
    settings.write_text(
        '[repositories."Codertocat/Hello-World"]\n'
        f'path = "{tmp_path / "sample-service"}"\nsponsor = "priya.shah"\n'
    )
    port = free_port()
    env = {**cli.env, "CODEFACTORY_GITHUB_WEBHOOK_SECRET": SECRETS["github"]}
    env.update(oidc_env(oidc_provider, tmp_path / "people"))
    command = [str(CLI), "--data-dir", str(cli.data_dir), "serve", "--port", str(port)]
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [*command, "--workers", "1", "--triggers", str(settings)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/healthz", timeout=1)
            break
        except httpx.TransportError:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            time.sleep(0.1)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(20)
        log.close()


def test_a_github_delivery_to_serve_ends_in_review(server: str, login: dict[str, str]) -> None:
    if not LABELED.is_file():
        pytest.skip(f"shared fixture data missing: {LABELED}")
    document = json.loads(LABELED.read_bytes())
    document["label"]["name"] = "lint"
    body = json.dumps(document).encode()
    sent = headers("github", body, event="issues", delivery_id="accept-1")
    receipt = httpx.post(f"{server}/webhooks/github", content=body, headers=sent, timeout=30)
    assert receipt.status_code == 202, receipt.text
    run_id = receipt.json()["run_id"]
    assert receipt.json()["status"] == "queued"
    deadline = time.monotonic() + 240
    run = {}
    while time.monotonic() < deadline:
        run = httpx.get(f"{server}/api/runs/{run_id}", headers=login, timeout=10).json()
        if run["state"] in ("in_review", "failed", "refused"):
            break
        time.sleep(0.5)
    assert run["state"] == "in_review", run["reason"]
    assert [d["stage"] for d in run["decisions"]] == ["intake", "packaging"]
    again = httpx.post(f"{server}/webhooks/github", content=body, headers=sent, timeout=30)
    assert again.json()["run_id"] == run_id and again.json()["duplicate"] is True
    spec = httpx.get(f"{server}/openapi.json", headers=login, timeout=10).json()
    assert {"/webhooks/github", "/webhooks/slack", "/webhooks/webhook"} <= set(spec["paths"])


def test_policy_check_prints_the_decision_and_the_deciding_policies(cli: Cli) -> None:
    allowed = cli.json("policy", "check", "--source", "jira", "--action", "fix_lint",
                       "--context", '{"sponsor": "priya.shah"}')  # fmt: skip
    assert allowed["allowed"] is True
    assert allowed["policy_ids"] == ["routine-changes-with-a-sponsor"]
    denied = cli("policy", "check", "--source", "jira", "--action", "modify_ci", "--json")
    assert denied.returncode == 1
    assert json.loads(denied.stdout)["policy_ids"] == ["no-autonomous-ci-changes"]
    examples = Path(__file__).resolve().parents[2] / "src/codefactory/policy"
    sentry = cli("policy", "check", "--source", "sentry", "--action", "open_draft_pr",
                 "--path", "src/app.py", "--policy", str(examples / "default.cedar"),
                 "--policy", str(examples / "examples"))  # fmt: skip
    assert sentry.returncode == 0 and "sentry-drafts-in-src" in sentry.stdout
    assert cli.json("policy", "validate")["ok"] is True
