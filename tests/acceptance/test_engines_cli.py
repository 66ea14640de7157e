"""`codefactory engines list|show|validate|check`, run as the installed console script with
`CODEFACTORY_ENGINES__REGISTRY` pointing at a registry of the test's own."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.conftest import CLI
from tests.unit.test_engine_registry_support import (
    DELETE,
    llm_entry,
    recipe_entry,
    write_registry,
)

SUMMARY = {
    "name",
    "engine_version",
    "model",
    "model_version",
    "provider",
    "status",
    "materiality",
    "owner",
    "validator",
    "next_review",
    "change_kinds",
}


class EnginesCli:
    def __init__(self, tmp_path: Path, registry: Path | None) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CODEFACTORY_")}
        if "CODEFACTORY_DATABASE_URL" in os.environ:  # the suite's PostgreSQL database
            self.env["CODEFACTORY_DATABASE_URL"] = os.environ["CODEFACTORY_DATABASE_URL"]
        self.env["CI"] = "true"
        if registry is not None:
            self.env["CODEFACTORY_ENGINES__REGISTRY"] = str(registry)
        self.data_dir = tmp_path / "data"

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CLI), "--data-dir", str(self.data_dir), "engines", *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
        )

    def json(self, *args: str) -> Any:
        result = self(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    return write_registry(
        tmp_path / "registry.toml",
        llm_entry(),
        llm_entry(name="cli:codex", validated_on=date(2026, 9, 1), next_review=date(2026, 10, 1)),
        llm_entry(name="cli:aider", status="suspended", status_reason="streams without usage"),
        llm_entry(name="cli:claude-code", validation_evidence=[]),
        recipe_entry(),
    )


def test_list_shows_each_entry_with_its_status_on_the_day(tmp_path: Path, registry: Path) -> None:
    rows = EnginesCli(tmp_path, registry).json("list", "--at", "2026-12-01")
    assert [row["name"] for row in rows] == [
        "agent:pydantic-ai",
        "cli:codex",
        "cli:aider",
        "cli:claude-code",
        "recipe:lint-fix",
    ]
    assert all(SUMMARY <= set(row) for row in rows)
    status = {row["name"]: row["status"] for row in rows}
    assert status == {
        "agent:pydantic-ai": "cleared",
        "cli:codex": "expired",
        "cli:aider": "suspended",
        "cli:claude-code": "unvalidated",
        "recipe:lint-fix": "cleared",
    }
    codex = rows[1]
    assert codex["status_detail"] == "its next review was due 2026-10-01"
    assert codex["model"] == "gpt-4.1-mini" and codex["model_version"] == "2025-04-14"
    assert codex["change_kinds"] == ["general_change", "fix_lint"]
    assert codex["next_review"] == "2026-10-01"


def test_show_prints_one_entry_in_full(tmp_path: Path, registry: Path) -> None:
    cli = EnginesCli(tmp_path, registry)
    entry = cli.json("show", "cli:aider", "--at", "2026-12-01")
    assert entry["status"] == "suspended"
    assert entry["declared_status"] == "suspended"
    assert entry["status_detail"] == "it is suspended: streams without usage"
    assert entry["budget"] == {
        "requests": 40,
        "input_tokens": 400000,
        "output_tokens": 40000,
        "cost_usd": 2,
        "wall_s": 600,
    }
    assert entry["prices"] == {"gpt-4.1-mini": {"input_per_mtok": 0.4, "output_per_mtok": 1.6}}
    assert entry["validation_evidence"] == ["run-1", "run-2"]
    missing = cli("show", "cli:openhands")
    assert missing.returncode == 1
    assert "engine cli:openhands is not in the registry" in missing.stderr


def test_check_refuses_with_the_reason_a_run_ends_with(tmp_path: Path, registry: Path) -> None:
    cli = EnginesCli(tmp_path, registry)
    refused = cli("check", "cli:codex", "--kind", "general_change", "--at", "2026-12-01")
    assert refused.returncode == 1
    assert "engine cli:codex is not cleared: its next review was due 2026-10-01" in refused.stdout
    allowed = cli.json(
        "check",
        "agent:pydantic-ai",
        "--kind",
        "fix_lint",
        "--repository",
        "web",
        "--at",
        "2026-12-01",
    )
    assert allowed["allowed"] is True and allowed["status"] == "cleared"


def test_validate_accepts_a_valid_file(tmp_path: Path) -> None:
    path = write_registry(tmp_path / "ok.toml", llm_entry(), recipe_entry())
    result = EnginesCli(tmp_path, None)("validate", str(path), "--at", "2026-12-01")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{path}: 2 engines, no problems" in result.stdout


def test_validate_lists_every_broken_rule(tmp_path: Path) -> None:
    path = write_registry(
        tmp_path / "rules.toml",
        llm_entry(validator="user:olivia", tools=["read_file", "rm"]),
        llm_entry(name="cli:codex", validation_evidence=[], prices={}),
        recipe_entry(validated_on=date(2026, 9, 1), next_review=date(2026, 8, 1)),
    )
    report = _validate_json(tmp_path, path)
    assert report["ok"] is False
    assert report["problems"] == [
        f"{path}: engine agent:pydantic-ai: validator: is the owner (user:olivia); "
        "validation must be independent",
        f"{path}: engine agent:pydantic-ai: tools: unknown rm (known: read_file, list_files, "
        "search, edit_file, apply_patch, run, finish)",
        f"{path}: engine cli:codex: validation_evidence: a language-model engine needs the run ids",
        f"{path}: engine cli:codex: prices: no price for model gpt-4.1-mini",
        f"{path}: engine recipe:lint-fix: next_review: 2026-08-01 is before validated_on "
        "2026-09-01",
    ]


def test_validate_lists_every_schema_problem(tmp_path: Path) -> None:
    path = write_registry(
        tmp_path / "schema.toml",
        llm_entry(change_kinds=["general_change", "rewrite"], next_review="June 2027"),
        recipe_entry(owner=DELETE),
    )
    cli = EnginesCli(tmp_path, None)
    result = cli("validate", str(path))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{path}: engine agent:pydantic-ai: change_kinds.1: Input should")
    assert lines[1] == (
        f"{path}: engine agent:pydantic-ai: next_review: must be an ISO date (YYYY-MM-DD)"
    )
    assert lines[2] == f"{path}: engine recipe:lint-fix: owner: Field required"
    assert len(lines) == 3


def test_an_invalid_configured_registry_stops_list_with_the_field(tmp_path: Path) -> None:
    path = write_registry(tmp_path / "bad.toml", llm_entry(status="paused"))
    result = EnginesCli(tmp_path, path)("list")
    assert result.returncode == 1
    assert "engine agent:pydantic-ai: status: Input should be" in result.stderr


def test_the_shipped_registry_by_default(tmp_path: Path) -> None:
    cli = EnginesCli(tmp_path, None)
    rows = {row["name"]: row for row in cli.json("list", "--at", "2026-12-01")}
    assert rows["agent:pydantic-ai"]["status"] == "cleared"
    assert rows["cli:aider"]["status"] == "suspended"
    assert rows["cli:codex"]["engine_version"] == "@openai/codex 0.169.0"
    assert cli.json("validate", "--at", "2026-12-01")["ok"] is True
    assert not (tmp_path / "data" / "factory.db").exists()


def _validate_json(tmp_path: Path, path: Path) -> Any:
    result = EnginesCli(tmp_path, path)("validate", "--at", "2026-12-01", "--json")
    assert result.returncode == 1, result.stdout
    return json.loads(result.stdout)
