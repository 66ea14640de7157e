"""Issue 10, item 8 on the real loop: two checkouts both called `itsdangerous` are two
repositories to policy, the store, the API and the dashboard; item 9: the one whose lint
finding is already gone ends `no_change`, the state the dashboard counts apart."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from codefactory.config import Settings
from codefactory.domain import CheckResult, Proposal, RunState, Task
from codefactory.engines.errors import NothingToDo
from codefactory.factory import build_factory
from codefactory.policy.cedar import default_policy_path
from codefactory.runs.tickets import accept_ticket
from codefactory.sandbox.port import Workspace
from codefactory.triggers.settings import RepositoryBinding, TriggerSettings
from codefactory.web.app import create_app
from tests.acceptance.conftest import TEMPLATE
from tests.conftest import asgi_get, data_dir_sharing_cache, sample_service
from tests.oidc_helpers import OidcProvider, oidc_settings, web_headers

pytestmark = pytest.mark.usefixtures("bwrap_available")
LINT = (TEMPLATE / "tickets" / "SVC-102.json").read_bytes()  # "fix the unused import"
LINT_FIXED = {
    "service/hostnames.py": (TEMPLATE / "sample-service" / "service" / "hostnames.py")
    .read_text()
    .replace("import os\n\n", "")
}


class EditsThenGivesUp:
    """Changes a file, then says there was nothing to do: that is no `no_change`."""

    name = "recipe:lint-fix"
    version = "0"

    def propose(
        self,
        task: Task,
        workspace: Workspace,
        feedback: Sequence[CheckResult],
        session: object = None,
    ) -> Proposal:
        workspace.write_file("service/hostnames.py", b"# emptied\n")
        raise NothingToDo("nothing to do after all")


def test_policy_store_api_and_dashboard_name_a_repository_by_its_id_never_its_folder(
    tmp_path: Path, uv_cache: Path, oidc_provider: OidcProvider
) -> None:
    theirs = sample_service(tmp_path / "someone" / "itsdangerous", **LINT_FIXED)
    ours = sample_service(tmp_path / "pallets" / "itsdangerous", **LINT_FIXED)
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "00-default.cedar").write_text(default_policy_path().read_text())
    (policies / "10-frozen.cedar").write_text(
        '@id("someone-itsdangerous-is-frozen")\n'
        '@reason("someone\'s itsdangerous is frozen")\n'
        'forbid (principal, action, resource == Repository::"someone/itsdangerous");\n'
    )
    triggers = TriggerSettings(
        repositories={
            # a Jira key names no repository: the binding says which one it is
            "SVC": RepositoryBinding(path=theirs, id="someone/itsdangerous"),
            "pallets/itsdangerous": RepositoryBinding(path=ours),
        }
    )
    data_dir = data_dir_sharing_cache(tmp_path / "data", uv_cache)
    extra = oidc_settings(oidc_provider, tmp_path / "people")
    factory = build_factory(
        Settings(data_dir=data_dir, policy_file=policies, triggers=triggers, **extra)
    )

    refused = accept_ticket(factory, payload=LINT, repo=theirs)
    assert refused.state is RunState.REFUSED and "frozen" in refused.reason, refused.reason
    assert refused.repository == "someone/itsdangerous"
    assert refused.repository_path == str(theirs.resolve())

    # The same folder name elsewhere is another repository: allowed; the finding the ticket
    # names is already gone there, so the run ends `no_change`, not `failed`.
    unchanged = accept_ticket(factory, payload=LINT, repo=ours)
    assert unchanged.state is RunState.NO_CHANGE, unchanged.reason
    assert unchanged.repository == "pallets/itsdangerous"
    assert unchanged.reason == (
        "no change needed: ruff reports no findings: the lint finding is already gone"
    )
    assert [s.state for s in unchanged.history][-2:] == [RunState.PROPOSING, RunState.NO_CHANGE]
    decided = factory.store.decisions(unchanged.id)
    assert decided[0]["allowed"] and decided[0]["policy_ids"] == ["routine-changes-with-a-sponsor"]

    store = factory.store
    record = store.engine_record("recipe:lint-fix")  # ongoing monitoring counts it apart
    assert (record.runs, record.no_change, record.rounds) == (2, 1, 0)
    assert [r.id for r in store.search_runs(repository="pallets/itsdangerous")] == [unchanged.id]
    assert [r.id for r in store.search_runs(repository="itsdangerous")] == []

    app = create_app(factory)
    login = web_headers(oidc_provider)
    listed = asgi_get(app, "/api/runs?repository=someone/itsdangerous", login).json()
    assert [(r["id"], r["repository"]) for r in listed] == [(refused.id, "someone/itsdangerous")]
    page = asgi_get(app, "/", login).text
    assert "<th>repository</th>" in page
    assert "<td>pallets/itsdangerous</td>" in page and "<td>someone/itsdangerous</td>" in page
    assert "no_change 1" in page and "refused 1" in page
    assert factory.audit.verify().ok

    # An engine that changed files and then claims there was nothing to do has failed.
    factory.loop.engines = {"recipe:lint-fix": EditsThenGivesUp()}
    gave_up = accept_ticket(factory, payload=LINT, repo=ours)
    assert gave_up.state is RunState.FAILED and "nothing to do after all" in gave_up.reason
