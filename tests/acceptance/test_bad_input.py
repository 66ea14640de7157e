"""Bad input: a clear one-line error, a run ended with its reason, an audit event."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.acceptance.conftest import TEMPLATE, Cli, ticket_file
from tests.conftest import make_repo
from tests.directory_helpers import directory_env
from tests.integration.signed_people import reviewer_directory
from tests.postgres_store import sqlite_store_only
from tests.store_sql import store_sql


def _sample_repo(tmp_path: Path) -> Path:
    files = {
        str(p.relative_to(TEMPLATE / "sample-service")): p.read_text()
        for p in (TEMPLATE / "sample-service").rglob("*")
        if p.is_file()
    }
    make_repo(tmp_path / "sample-service", files)
    return tmp_path / "sample-service"


def _one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error:")
    return lines[0]


def test_a_ticket_that_is_not_json_is_refused_with_the_reason(cli: Cli, tmp_path: Path) -> None:
    ticket = tmp_path / "broken.json"
    ticket.write_text("{not json")
    result = cli("trigger", "--repo", str(tmp_path), "--ticket", str(ticket))
    assert result.returncode == 1
    assert "not valid JSON" in _one_line_error(result.stderr)
    (run,) = cli.json("runs", "list")
    assert run["state"] == "refused" and "not valid JSON" in run["reason"]
    assert cli.json("audit", "verify")["count"] >= 3


def test_a_path_that_is_not_a_git_repository_fails_the_run(cli: Cli, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    ticket = ticket_file(tmp_path, "SVC-102")
    result = cli("trigger", "--repo", str(plain), "--ticket", str(ticket))
    assert result.returncode == 1
    assert "not a git repository" in _one_line_error(result.stderr)
    (run,) = cli.json("runs", "list")
    assert run["state"] == "failed" and "not a git repository" in run["reason"]
    assert not list((cli.data_dir / "workspaces").glob("*"))
    assert cli("audit", "verify").returncode == 0


# A ticket with nothing to fix is no bad input: it ends `no_change` with the engine's reason
# (issue 10, item 9), tested in test_run_outcomes.py.


def test_a_test_suite_that_times_out_fails_the_run_with_evidence(cli: Cli, tmp_path: Path) -> None:
    repo = _sample_repo(tmp_path)
    (repo / "tests" / "test_slow.py").write_text(
        "import time\n\ndef test_slow():\n    time.sleep(60)\n"
    )
    from tests.conftest import git

    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "slow test")
    cli.env["CODEFACTORY_RUNS__TEST_TIMEOUT_S"] = "2"
    ticket = ticket_file(tmp_path, "SVC-102")
    result = cli("trigger", "--repo", str(repo), "--ticket", str(ticket))
    assert result.returncode == 1
    line = _one_line_error(result.stderr)
    assert "tests" in line
    (run,) = cli.json("runs", "list")
    report = cli.json("runs", "show", run["id"])
    assert report["state"] == "failed"
    assert any(f["rule"] == "tests-timed-out" for f in report["findings"])
    assert (cli.data_dir / "evidence" / run["id"] / "round-1" / "junit.xml").is_file()


def test_the_sponsor_cannot_approve_their_own_run(cli: Cli, tmp_path: Path) -> None:
    repo = _sample_repo(tmp_path)
    ticket = ticket_file(tmp_path, "SVC-102")
    cli("trigger", "--repo", str(repo), "--ticket", str(ticket), check=True)
    (run,) = cli.json("runs", "list")
    assert run["state"] == "in_review"
    directory, key = reviewer_directory(tmp_path / "people")
    cli.env.update(directory_env(directory))
    unsigned = cli("review", "approve", run["id"], "--as", "jordan.lee")
    assert unsigned.returncode == 1 and "a name alone proves nothing" in unsigned.stderr
    refused = cli("review", "approve", run["id"], "--as", run["sponsor"], "--key", str(key))
    assert refused.returncode == 1
    assert "segregation of duties" in _one_line_error(refused.stderr)
    assert cli.json("runs", "show", run["id"])["state"] == "in_review"
    rejected = cli.json("review", "reject", run["id"], "--as", "jordan.lee", "--key", str(key),
                        "--comment", "no")  # fmt: skip
    assert rejected["state"] == "rejected"


def test_a_tampered_event_name_is_shown_as_text_not_as_terminal_markup(
    cli: Cli, tmp_path: Path
) -> None:
    """Event names come from the database: an insider's `x[/]` must neither crash the
    report (Rich markup) nor hide the bad index."""
    ticket = tmp_path / "broken.json"
    ticket.write_text("{not json")
    cli("trigger", "--repo", str(tmp_path), "--ticket", str(ticket))
    with store_sql(cli.data_dir) as db:
        db.execute("UPDATE audit_events SET name = 'x[/]' WHERE seq = 1")
    result = cli("audit", "verify")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "audit log verification failed" in result.stderr and "x[/]" in result.stderr
    # Nor may a name take over the terminal: ECMA-48 controls (ESC, CSI, BEL) are shown as
    # escapes, so a forged green "verified" cannot overwrite the failure line.
    forged = "\x1b[2K\x1b[1G\x1b[32maudit log verified\x9b\x07"
    with store_sql(cli.data_dir) as db:
        db.execute("UPDATE audit_events SET name = ? WHERE seq = 1", [forged])
    result = cli("audit", "verify")
    assert result.returncode == 1
    assert not {"\x1b", "\x9b", "\x07"} & set(result.stderr)
    shown = r"event 1 (\x1b[2K\x1b[1G\x1b[32maudit log verified\x9b\x07) was altered"
    assert shown in result.stderr
    # `audit export` is JSON: the controls are escapes there, and the leaf is intact
    exported = cli("audit", "export", check=True).stdout
    assert not {"\x1b", "\x9b", "\x07"} & set(exported)
    lines = {line["index"]: line for line in map(json.loads, exported.splitlines())}
    assert json.loads(lines[1]["leaf"])["name"] == forged  # the altered leaf, as stored
    leaf_hash = hashlib.sha256(b"\x00" + lines[0]["leaf"].encode()).hexdigest()
    assert lines[0]["leaf_hash"].removeprefix("sha256:") == leaf_hash  # RFC 9162, intact
    # The same for every command printing stored text: a run's reason, in a list or a report.
    with store_sql(cli.data_dir) as db:
        db.execute("UPDATE runs SET reason = ?, sponsor = ?", [forged, "[conceal]x"])
    (run,) = cli.json("runs", "list")
    for printed in (cli("runs", "list").stdout, cli("runs", "show", run["id"]).stdout):
        assert not {"\x1b", "\x9b", "\x07"} & set(printed)
        assert r"\x1b[2K" in printed and "[conceal]x" in printed


@sqlite_store_only  # PostgreSQL refuses text that is not UTF-8 when it is written
def test_a_stored_byte_that_is_not_utf8_fails_its_event_not_the_command(
    cli: Cli, tmp_path: Path
) -> None:
    """The SQLite file edited by hand: a byte that is not UTF-8 in an event's data is that
    event altered, named, not a crash of every command that reads the log."""
    ticket = tmp_path / "broken.json"
    ticket.write_text("{not json")
    cli("trigger", "--repo", str(tmp_path), "--ticket", str(ticket))
    with store_sql(cli.data_dir) as db:
        db.execute("""UPDATE audit_events SET data = CAST(X'7b2261223a22ff227d' AS TEXT)
                      WHERE seq = 2""")  # {"a":"\xff"}
    result = cli("audit", "verify")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "audit log verification failed: event 2 (" in result.stderr
    assert "was altered" in result.stderr
    with store_sql(cli.data_dir) as db:  # a run's reason: listed, the byte shown as escape
        db.execute("UPDATE runs SET reason = CAST(X'41ff42' AS TEXT)")
    listed = cli("runs", "list")
    assert listed.returncode == 0 and r"A\udcffB" in listed.stdout, listed.stderr


@sqlite_store_only  # PostgreSQL refuses text that is not UTF-8 when it is written
def test_a_refusal_quoting_a_stored_byte_that_is_not_utf8_fails_closed_in_one_line(
    cli: Cli, tmp_path: Path
) -> None:
    """A run's branch edited by hand to hold a byte that is not UTF-8: the approval is refused,
    and the refusal, which quotes the branch, cannot become an audit event (RFC 8785 has no
    form for it). The command says so in one line, no traceback, and nothing is approved."""
    repo = _sample_repo(tmp_path)
    cli("trigger", "--repo", str(repo), "--ticket", str(ticket_file(tmp_path, "SVC-102")),
        check=True)  # fmt: skip
    (run,) = cli.json("runs", "list")
    with store_sql(cli.data_dir) as db:
        db.execute("UPDATE runs SET branch = branch || CAST(X'ff' AS TEXT)")
    directory, key = reviewer_directory(tmp_path / "people")
    cli.env.update(directory_env(directory))
    result = cli("review", "approve", run["id"], "--as", "jordan.lee", "--key", str(key))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    line = _one_line_error(result.stderr)
    assert "cannot be recorded" in line and "what it records was not done" in line, line
    assert cli.json("runs", "show", run["id"])["state"] == "in_review"
