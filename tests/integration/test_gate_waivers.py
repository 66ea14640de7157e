"""A waiver in a real run: signed by a security officer, the finding is reported, does not
block, and its use is audited."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from codefactory.config import Settings
from codefactory.domain import CheckResult, Proposal, RunState, Task
from codefactory.factory import build_factory
from codefactory.identity.settings import IdentitySettings
from codefactory.identity.ssh_signatures import GOVERNANCE_NAMESPACE, sign
from codefactory.identity.statements import rfc3339
from codefactory.runs.tickets import accept_ticket
from codefactory.runs.waiver_log import waiver_statement
from codefactory.sandbox.port import Workspace
from codefactory.verify.settings import VerifySettings, Waiver
from tests.acceptance.conftest import TEMPLATE
from tests.conftest import sample_service
from tests.directory_helpers import person, standard_directory
from tests.integration.signed_people import make_key

pytestmark = pytest.mark.usefixtures("bwrap_available")

INSECURE = b"""

def notify(cmd):
    import subprocess

    return subprocess.call(cmd, shell=True)
"""


class ShellEngine:
    """Adds a shell call to the service: a new SAST finding (B602) in the change."""

    name = "test:shell"
    version = "0"

    def propose(
        self,
        task: Task,
        workspace: Workspace,
        feedback: Sequence[CheckResult],
        session: object = None,
    ) -> Proposal:
        current = workspace.read_file("service/callbacks.py") or b""
        workspace.write_file("service/callbacks.py", current + INSECURE)
        return Proposal(engine=self.name, engine_version=self.version, rationale="notify")


def test_a_waived_finding_lets_the_run_through_and_names_its_approver(
    tmp_path: Path,
) -> None:
    sample_service(tmp_path / "svc")
    made = make_key(tmp_path / "people", "ciso")
    entry = person("CISO", roles=["security"], ssh_keys=[made.public])
    directory = standard_directory(tmp_path / "people", {"ciso": entry})  # + the CLI's sponsor
    at = datetime.now(UTC).replace(microsecond=0)
    unsigned = Waiver(
        check="sast", rule="B602", path="service/*", approver="ciso", reason="trusted input",
        signed_at=rfc3339(at),
    )  # fmt: skip
    signature = sign(waiver_statement(unsigned, at=at), made.private, GOVERNANCE_NAMESPACE)
    waiver = unsigned.model_copy(update={"signature": signature})
    settings = Settings(
        data_dir=tmp_path / "data",
        verify=VerifySettings(waivers=(waiver,)),
        identity=IdentitySettings(directory_file=directory),
    )
    factory = build_factory(settings)
    factory.loop.engines = {"recipe:lint-fix": ShellEngine()}

    run = accept_ticket(
        factory, payload=(TEMPLATE / "tickets" / "SVC-102.json").read_bytes(), repo=tmp_path / "svc"
    )

    assert run.state is RunState.IN_REVIEW, run.reason
    [event] = [e for e in factory.audit.events(run.id) if e.name == "finding-waived"]
    assert event.actor == "user:ciso"
    assert (event.data["rule"], event.data["reason"]) == ("B602", "trusted input")
    evidence = settings.data_dir / "evidence" / run.id / "round-1" / "sast.sarif"
    results = json.loads(evidence.read_text())["runs"][0]["results"]
    waived = [r for r in results if r["ruleId"] == "B602"]
    assert waived[0]["suppressions"][0]["properties"]["approver"] == "ciso"
    assert waived[0]["baselineState"] == "new"
