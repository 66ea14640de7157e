"""The issue's acceptance check: the demo, audit verification, and tampering detected."""

from __future__ import annotations

import json
import subprocess

from codefactory.review.local_forge import forge_name
from tests.acceptance.conftest import Cli
from tests.store_sql import store_sql


def test_demo_hands_off_three_runs_refuses_one_and_the_audit_log_proves_it(cli: Cli) -> None:
    result = cli("demo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verified" in result.stdout

    runs = cli.json("runs", "list")
    states = sorted(run["state"] for run in runs)
    assert states == ["handed_off", "handed_off", "handed_off", "refused"]
    # one repository, named by its canonical id (a local checkout: `local:<path>`)
    (repository,) = {run["repository"] for run in runs}
    assert repository.startswith("local:/") and repository.endswith("/sample-service")
    refused = next(run for run in runs if run["state"] == "refused")
    assert "CI" in refused["reason"] or "ci" in refused["reason"]

    bump = next(
        run for run in runs if run["state"] == "handed_off" and run["kind"] == "bump_dependency"
    )
    forge = cli.data_dir / "forge" / forge_name(bump["repository"])
    pinned = subprocess.run(
        ["git", "-C", str(forge), "show", f"{bump['branch']}:requirements.txt"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert pinned == "idna==3.7\n"

    report = cli.json("runs", "show", bump["id"])
    assert [s["state"] for s in report["history"]] == [
        "received",
        "authorized",
        "provisioned",
        "context_ready",
        "proposing",
        "verifying",
        "verified",
        "packaged",
        "in_review",
        "approved",
        "handed_off",
    ]
    package = cli.data_dir / "packages" / bump["id"]
    for name in ("change.patch", "risk.json", "rollback.md", "cab.json", "summary.md"):
        assert (package / name).is_file(), name
    assert (package / "evidence" / "junit.xml").is_file()
    # the approval is a statement signed with the reviewer's key, checkable by an outsider
    statement = package / "reviews" / "1-approve.json"
    assert json.loads(statement.read_text())["reviewer"] == "jordan.lee"
    checked = subprocess.run(
        ["ssh-keygen", "-Y", "verify", "-f", str(statement.with_suffix(".allowed_signers")),
         "-I", "jordan.lee", "-n", "codefactory-review", "-s", f"{statement}.sig"],
        input=statement.read_text(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert sorted(p.name for p in (package / "evidence").glob("*.sarif")) == [
        "diff_policy.sarif",
        "integrity.sarif",
        "lint.sarif",
        "sast.sarif",
        "sca.sarif",
        "secrets.sarif",
    ]

    fix = next(run for run in runs if run["kind"] == "general_change")
    assert fix["state"] == "handed_off" and fix["engine"] == "agent:pydantic-ai"
    fixed = cli.json("runs", "show", fix["id"])
    assert [c["passed"] for c in fixed["checks"] if c["check"] == "tests"] == [False, True]
    traffic = fixed["model_traffic"]
    assert traffic["requests"] >= 8 and traffic["output_tokens"] > 0 and traffic["cost_usd"] > 0
    assert traffic["outcomes"] == {"ok": traffic["requests"]}
    assert fixed["tool_calls"]["by_tool"]["finish"] == 2 and fixed["tool_calls"]["refused"] == 0
    callbacks = subprocess.run(
        ["git", "-C", str(forge), "show", f"{fix['branch']}:service/callbacks.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "if port not in (None, 443):" in callbacks

    monitored = cli("engines", "monitor", "agent:pydantic-ai", "--json")
    assert monitored.returncode == 1  # its first round failed the gate: above the 0.4 limit
    (agent,) = json.loads(monitored.stdout)
    assert agent["figures"]["runs"] == 1 and agent["figures"]["acceptance_rate"] == 1.0
    assert agent["figures"]["gate_failure_rate"] == 0.5
    assert agent["breached"] == ["gate_failure_rate"]
    assert 0 < agent["figures"]["cost_per_run"] < 1.0

    assert cli("audit", "verify").returncode == 0
    verdict = cli.json("audit", "verify")
    assert verdict["ok"] and verdict["count"] > 20

    with store_sql(cli.data_dir) as db:
        name = db.execute("SELECT name FROM audit_events WHERE seq = 7").fetchone()[0]
        db.execute("""UPDATE audit_events SET data = '{"forged":true}' WHERE seq = 7""")
    tampered = cli("audit", "verify", "--json")
    assert tampered.returncode == 1
    assert "7" in tampered.stderr and name in tampered.stderr
