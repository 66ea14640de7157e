"""Issue 10, items 8 and 9 through the CLI and the real loop: a ticket that needs no change
ends `no_change` with the reason, and `runs list` names each run's repository by its
canonical id. (Policy by id, with two same-named checkouts: tests/integration/
test_repository_ids_runs.py.)"""

from __future__ import annotations

import json
from pathlib import Path

from tests.acceptance.conftest import TEMPLATE, Cli
from tests.conftest import sample_service

BUMP = TEMPLATE / "tickets" / "SVC-101.json"  # "fix idna==3.6 (PYSEC-2024-60)"


def audit_events(cli: Cli, run_id: str) -> list[dict[str, object]]:
    lines = cli("audit", "export", check=True).stdout.splitlines()
    leaves = [json.loads(json.loads(line)["leaf"]) for line in lines]
    return [leaf for leaf in leaves if leaf.get("run_id") == run_id]


def test_a_ticket_whose_pin_is_already_safe_ends_no_change_with_the_reason(
    cli: Cli, tmp_path: Path
) -> None:
    repo = sample_service(
        tmp_path / "pallets" / "itsdangerous", **{"requirements.txt": "idna==3.7\n"}
    )
    result = cli("trigger", "--repo", str(repo), "--ticket", str(BUMP))
    assert result.returncode == 0, result.stdout + result.stderr  # an outcome, not an error
    assert "no_change" in result.stdout and "no change needed:" in result.stdout

    (run,) = cli.json("runs", "list")
    assert run["state"] == "no_change", run["reason"]
    assert run["reason"].startswith("no change needed: no known advisory"), run["reason"]
    assert run["repository"] == f"local:{repo.resolve()}"
    assert run["repository_path"] == str(repo.resolve())
    report = cli.json("runs", "show", run["id"])
    assert [s["state"] for s in report["history"]][-2:] == ["proposing", "no_change"]
    assert report["package"] is None and report["checks"] == []
    assert not list((cli.data_dir / "forge").glob("*.git"))  # nothing reached the forge

    events = audit_events(cli, run["id"])
    (done,) = [e for e in events if e["name"] == "no-change-needed"]
    data = json.loads(str(done["data"])) if isinstance(done["data"], str) else done["data"]
    assert isinstance(data, dict) and data["engine"] == "recipe:dependency-bump"
    assert run["reason"] == f"no change needed: {data['reason']}"

    table = cli("runs", "list").stdout
    header = next(line for line in table.splitlines() if "repository" in line)
    assert header.index("run") < header.index("repository") < header.index("state"), table
    assert "no_change" in table and "itsdangerous" in table, table
