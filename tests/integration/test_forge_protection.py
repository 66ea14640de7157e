"""`codefactory forge check-protection` against the loopback GitHub Enterprise Server
stand-in (`tests/forge_standins/github.py`: `GET /repos/{o}/{r}/branches/{b}/protection`
answered with GitHub's documented shapes), through the production client: the gaps named,
the exit codes (0 none, 1 gaps, 2 errors), and every check audited."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from codefactory.cli import app
from codefactory.config import Settings
from codefactory.factory import build_factory
from tests.conftest import make_repo
from tests.forge_standins.git_http import GitHttpStandin
from tests.forge_standins.github import GitHubStandin

APP_TOKEN = "ghs_app_installation_token_for_tests"
GUARDED, OPEN = "acme/payments", "acme/ledger"


def full_protection(api: GitHubStandin, repository: str) -> dict[str, Any]:
    """GitHub's `GET .../protection` answer for a branch that needs two fresh approvals, the
    gate's check, and holds administrators to the rules."""
    url = f"{api.url}/api/v3/repos/{repository}/branches/main/protection"
    return {
        "url": url,
        "required_status_checks": {
            "url": f"{url}/required_status_checks",
            "strict": True,
            "contexts": ["codefactory/gate"],
            "checks": [{"context": "codefactory/gate", "app_id": None}],
        },
        "required_pull_request_reviews": {
            "dismiss_stale_reviews": True,
            "require_code_owner_reviews": False,
            "required_approving_review_count": 2,
            "require_last_push_approval": True,
        },
        "enforce_admins": {"enabled": True, "url": f"{api.url}/api/v3/..."},
        "required_linear_history": {"enabled": False},
        "allow_force_pushes": {"enabled": False},
        "allow_deletions": {"enabled": False},
    }


@pytest.fixture
def github(tmp_path: Path) -> Iterator[GitHubStandin]:
    auth = "Basic " + base64.b64encode(f"x-access-token:{APP_TOKEN}".encode()).decode()
    git_host = GitHttpStandin(tmp_path / "github-git", authorization=auth)
    api = GitHubStandin(git=git_host, app_token=APP_TOKEN, user_tokens={})
    seed = tmp_path / "seed"
    make_repo(seed, {"app.py": "print('hi')\n"})
    for name in (GUARDED, OPEN):
        git_host.create(name, seed=seed)
    api.protections[(GUARDED, "main")] = full_protection(api, GUARDED)
    # the ledger's main: protected, but one stale-surviving approval and admins exempt
    api.protections[(OPEN, "main")] = {
        "url": f"{api.url}/api/v3/repos/{OPEN}/branches/main/protection",
        "required_pull_request_reviews": {
            "dismiss_stale_reviews": False,
            "required_approving_review_count": 1,
        },
        "enforce_admins": {"enabled": False},
    }
    try:
        yield api
    finally:
        api.stop()
        git_host.stop()


Invoke = Any


@pytest.fixture
def cli(tmp_path: Path, github: GitHubStandin, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    token = tmp_path / "github-app-token"
    token.write_text(APP_TOKEN + "\n")
    monkeypatch.setenv("CODEFACTORY_FORGE__TYPE", "github")
    monkeypatch.setenv("CODEFACTORY_FORGE__BASE_URL", github.url)
    monkeypatch.setenv("CODEFACTORY_FORGE__TOKEN_FILE", str(token))
    monkeypatch.setenv("CODEFACTORY_FORGE__MAX_RETRY_WAIT_S", "0")
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, ["--data-dir", str(tmp_path / "data"), *args])
        return result.exit_code, result.output

    return invoke


def checked(tmp_path: Path) -> list[dict[str, Any]]:
    factory = build_factory(Settings(data_dir=tmp_path / "data"))
    return [e.data for e in factory.audit.events() if e.name == "forge-protection-checked"]


def test_a_branch_that_needs_review_passes_and_the_check_is_audited(
    tmp_path: Path, cli: Invoke, github: GitHubStandin
) -> None:
    code, output = cli("forge", "check-protection", "--repository", GUARDED)
    assert code == 0, output
    assert "no merge without review" in output
    (get,) = github.calls("GET", "/protection")
    assert get.who == "app" and get.path.endswith(f"/repos/{GUARDED}/branches/main/protection")
    (event,) = checked(tmp_path)
    assert (event["forge"], event["repository"], event["branch"]) == ("github", GUARDED, "main")
    assert event["outcome"] == "protected" and event["gaps"] == []


def test_each_gap_is_named_and_exits_1(tmp_path: Path, cli: Invoke) -> None:
    code, output = cli(
        "forge", "check-protection", "--repository", OPEN, "--repository", GUARDED, "--json"
    )
    assert code == 1, output
    found = {check["repository"]: check for check in json.loads(output)["checks"]}
    assert found[GUARDED]["outcome"] == "protected"
    assert found[OPEN]["outcome"] == "gaps"
    assert found[OPEN]["gaps"] == [
        "an approval survives a later push (stale approvals are not dismissed)",
        "administrators may merge without the rules",
        "the gate's verdict (codefactory/gate) is not a required check",
    ]
    assert {e["repository"]: e["outcome"] for e in checked(tmp_path)} == {
        OPEN: "gaps",
        GUARDED: "protected",
    }


def test_an_unprotected_branch_is_a_gap(cli: Invoke) -> None:
    code, output = cli("forge", "check-protection", "--repository", GUARDED, "--branch", "dev")
    assert code == 1, output
    assert "branch dev is not protected: anyone with write access merges" in output


def test_forge_errors_are_named_and_exit_2(
    tmp_path: Path, cli: Invoke, github: GitHubStandin
) -> None:
    code, output = cli("forge", "check-protection", "--repository", "acme/missing")
    assert code == 2, output
    assert "HTTP 404" in output
    github.fail_next(401, path_contains="/protection")
    code, output = cli("forge", "check-protection", "--repository", GUARDED, "--json")
    assert code == 2, output
    (check,) = json.loads(output)["checks"]
    assert check["error_kind"] == "forge-unauthorized" and "Bad credentials" in check["error"]
    github.fail_next(503, times=10, path_contains="/protection")
    code, output = cli("forge", "check-protection", "--repository", GUARDED, "--json")
    assert code == 2 and json.loads(output)["checks"][0]["error_kind"] == "forge-unavailable"
    kinds = [e["error_kind"] for e in checked(tmp_path)]
    assert kinds == ["forge-not-found", "forge-unauthorized", "forge-unavailable"]


def test_the_bound_repositories_are_checked_by_default_and_local_ones_skipped(
    tmp_path: Path, cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    checkout, other = tmp_path / "payments", tmp_path / "scratch"
    make_repo(checkout, {"a.py": "x = 1\n"})
    make_repo(other, {"a.py": "x = 1\n"})
    bindings = {GUARDED: {"path": str(checkout)}, "SVC": {"path": str(other)}}
    monkeypatch.setenv("CODEFACTORY_TRIGGERS__REPOSITORIES", json.dumps(bindings))
    code, output = cli("forge", "check-protection", "--json")
    assert code == 0, output
    answer = json.loads(output)
    assert [c["repository"] for c in answer["checks"]] == [GUARDED]
    (skipped,) = answer["skipped"]
    assert skipped["repository"].startswith("local:")


def test_the_local_forge_has_nothing_to_check(cli: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEFACTORY_FORGE__TYPE", "local")
    code, output = cli("forge", "check-protection", "--repository", GUARDED)
    assert code == 2
    assert "forge.type is `local`" in output
