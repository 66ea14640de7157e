"""`codefactory trigger` and `runs list|show` in-process (typer's CliRunner) over a real
store and Cedar (issue 11): the sponsor is the logged-in OS account as the directory knows
it, never the ticket's reporter; untrusted text prints as written, never as Rich markup."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from codefactory.cli import app
from tests.directory_helpers import DIRECTORY_ENV, os_account, person, write_directory

TEMPLATE = Path(__file__).resolve().parents[2] / "src/codefactory/demo_template/tickets"


def ticket(tmp_path: Path, name: str, **fields: Any) -> Path:
    """A demo ticket with `fields` overridden (`key` at the top level)."""
    document = json.loads((TEMPLATE / "SVC-101.json").read_text())
    key = fields.pop("key", None)
    if key is not None:
        document["key"] = key
    document["fields"].update(fields)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(document))
    return path


@pytest.fixture
def cli(tmp_path: Path) -> Any:
    runner = CliRunner()

    def invoke(*args: str, code: int | None = 0) -> Any:
        result = runner.invoke(app, ["--data-dir", str(tmp_path / "data"), *args])
        if code is not None:
            assert result.exit_code == code, (args, result.output, result.exception)
        return result

    return invoke


def test_the_sponsor_is_the_logged_in_person_not_the_reporter(cli: Any, tmp_path: Path) -> None:
    # `ci` asks for a CI change: policy refuses it at intake, before any sandbox
    hostile = ticket(tmp_path, "ci", labels=["ci"], reporter={"name": "ceo"})
    refused = json.loads(
        cli("trigger", "--repo", str(tmp_path), "--ticket", str(hostile), "--json", code=1).stdout
    )
    assert refused["sponsor"] == "priya.shah"  # this OS account, in the session's directory
    shown = json.loads(cli("runs", "show", refused["id"], "--json").stdout)
    assert shown["trigger"]["sender"] == os_account()
    assert shown["trigger"]["caused_by"] == "user:priya.shah"


def test_a_caller_the_directory_does_not_know_sponsors_nothing(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    people = {"priya.shah": person("Priya", github="Codertocat")}  # no unix identity
    monkeypatch.setenv(DIRECTORY_ENV, str(write_directory(tmp_path / "people.toml", people)))
    result = cli("trigger", "--repo", str(tmp_path), "--ticket", str(ticket(tmp_path, "t")), code=1)
    assert f"the unix identity '{os_account()}' is not in the directory" in result.output
    found = json.loads(cli("runs", "list", "--json").stdout)
    assert [(run["state"], run["sponsor"]) for run in found] == [("refused", "")]


def test_markup_in_titles_keys_and_reasons_prints_as_written(cli: Any, tmp_path: Path) -> None:
    marked = ticket(tmp_path, "marked", summary="Fix [/x] and [bold red]this[/]", labels=["ci"])
    cli("trigger", "--repo", str(tmp_path), "--ticket", str(marked), code=1)
    bad_key = ticket(tmp_path, "key", key="[/x]", summary="")  # the reason quotes the key
    cli("trigger", "--repo", str(tmp_path), "--ticket", str(bad_key), code=1)
    listed = cli("runs", "list").stdout  # `[/x]` once crashed this with a MarkupError
    assert "[/x] has no `fields.summary`" in " ".join(listed.split())
    runs = json.loads(cli("runs", "list", "--json").stdout)
    marked_run = next(run for run in runs if "CI" in run["reason"] or "ci" in run["reason"])
    shown = cli("runs", "show", marked_run["id"]).stdout
    assert "Fix [/x] and [bold red]this[/]" in shown
