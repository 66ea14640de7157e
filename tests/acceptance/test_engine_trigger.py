"""The engine interfaces as outside checks drive them: `trigger --engine`, the gateway's
upstream and the registry from the environment, `runs show --json`, `runs replay`."""

from __future__ import annotations

from pathlib import Path

from codefactory.demo import DEMO_TRANSCRIPT, create_sample_repository
from tests.acceptance.conftest import Cli, ticket_file
from tests.store_sql import store_sql


def test_trigger_takes_an_engine_the_registry_and_policy_still_decide(
    cli: Cli, tmp_path: Path
) -> None:
    repo = create_sample_repository(tmp_path / "sample-service")
    bug = ticket_file(tmp_path, "SVC-104")

    refused = cli("trigger", "--repo", str(repo), "--ticket", str(bug), "--engine", "cli:aider")
    assert refused.returncode == 1 and "not cleared" in refused.stderr, refused.stderr

    cli.env["CODEFACTORY_GATEWAY__UPSTREAM"] = f"replay:{DEMO_TRANSCRIPT}"
    run = cli.json(
        "trigger", "--repo", str(repo), "--ticket", str(bug), "--engine", "agent:pydantic-ai"
    )
    assert run["state"] == "in_review" and run["engine"] == "agent:pydantic-ai"
    shown = cli.json("runs", "show", run["id"])
    assert shown["engine"] == "agent:pydantic-ai"
    assert shown["model_traffic"]["requests"] == 8
    assert shown["model_traffic"]["input_tokens"] > 0 and shown["model_traffic"]["cost_usd"] > 0
    assert isinstance(shown["egress"], list)

    replayed = cli("runs", "replay", run["id"], "--json")
    assert replayed.returncode == 0, replayed.stderr
    assert '"same_diff": true' in replayed.stdout and '"same_checks": true' in replayed.stdout
    # An insider who edits the run's row and its run-created event alike is caught by the log.
    with store_sql(cli.data_dir) as db:
        db.execute(
            """UPDATE audit_events SET data = replace(data, '"sponsor":"', '"sponsor":"x')
               WHERE name = 'run-created' AND run_id = ?""",
            [run["id"]],
        )
    edited = cli("runs", "replay", run["id"])
    assert edited.returncode == 1 and "Traceback" not in edited.stderr
    assert "not replayed: the audit log does not verify (event" in edited.stderr


def test_a_registry_file_from_the_environment_decides(cli: Cli, tmp_path: Path) -> None:
    registry = tmp_path / "registry.toml"
    shipped = Path(DEMO_TRANSCRIPT).parents[2] / "engines" / "registry.toml"
    registry.write_text(shipped.read_text().replace('status = "active"', 'status = "suspended"', 3))
    cli.env["CODEFACTORY_ENGINES__REGISTRY"] = str(registry)
    listed = {entry["name"]: entry["status"] for entry in cli.json("engines", "list")}
    assert listed["agent:pydantic-ai"] == "suspended"
    repo = create_sample_repository(tmp_path / "sample-service")
    result = cli("trigger", "--repo", str(repo), "--ticket", str(ticket_file(tmp_path, "SVC-104")))
    assert result.returncode == 1 and "suspended" in result.stderr, result.stderr
