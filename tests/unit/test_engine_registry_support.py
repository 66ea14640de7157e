"""Registry entries as data and as TOML text, shared by the engine registry's tests.

`to_toml` writes the subset of TOML the registry uses (strings, numbers, booleans, dates,
lists, inline tables), so tests go through the real parser rather than building models.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from codefactory.engines.registry import EngineRegistry, parse_registry

DELETE = object()
"""An override value that removes the key."""


def llm_entry(**overrides: Any) -> dict[str, Any]:
    """A valid, cleared language-model entry (until 2027-06-30), with `overrides` applied."""
    entry: dict[str, Any] = {
        "name": "agent:pydantic-ai",
        "engine_version": "codefactory 0.1.0",
        "model": "gpt-4.1-mini",
        "model_version": "2025-04-14",
        "provider": "replay",
        "endpoint": "replay",
        "protocol": "openai-chat",
        "status": "active",
        "change_kinds": ["general_change", "fix_lint"],
        "repositories": ["payments-*", "web"],
        "data_classes": ["public", "internal"],
        "prohibited_change_kinds": ["modify_ci"],
        "prohibited_repositories": ["payments-core"],
        "materiality": "medium",
        "owner": "user:olivia",
        "validator": "user:victor",
        "validated_on": date(2026, 11, 1),
        "validation_evidence": ["run-1", "run-2"],
        "known_limitations": ["replays only"],
        "tools": ["read_file", "edit_file", "finish"],
        "budget": {
            "requests": 40,
            "input_tokens": 400_000,
            "output_tokens": 40_000,
            "cost_usd": 2.0,
            "wall_s": 600,
        },
        "max_rounds": 2,
        "prices": {"gpt-4.1-mini": {"input_per_mtok": 0.4, "output_per_mtok": 1.6}},
        "metrics": {"acceptance_rate": {"min": 0.6}, "cost_per_run": {"max": 1.0}},
        "next_review": date(2027, 6, 30),
    }
    return _apply(entry, overrides)


def recipe_entry(**overrides: Any) -> dict[str, Any]:
    """A valid, cleared recipe entry, with `overrides` applied."""
    entry: dict[str, Any] = {
        "name": "recipe:lint-fix",
        "engine_version": "codefactory 0.1.0",
        "protocol": "none",
        "status": "active",
        "change_kinds": ["fix_lint"],
        "data_classes": ["public", "internal", "confidential", "restricted"],
        "materiality": "low",
        "owner": "team:platform",
        "validator": "team:validation",
        "validated_on": date(2026, 11, 2),
        "next_review": date(2027, 6, 30),
    }
    return _apply(entry, overrides)


def _apply(entry: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    for key, value in overrides.items():
        if value is DELETE:
            entry.pop(key, None)
        else:
            entry[key] = value
    return entry


def to_toml(*entries: dict[str, Any], **top: Any) -> str:
    """A registry file holding `entries` as `[[engine]]` tables, `top` keys first."""
    lines = [f"{key} = {_value(value)}" for key, value in top.items()]
    for entry in entries:
        lines.append("\n[[engine]]")
        lines += [f"{key} = {_value(value)}" for key, value in entry.items()]
    return "\n".join(lines) + "\n"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, int | float | date):
        return str(value) if not isinstance(value, date) else value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{json.dumps(key)} = {_value(item)}" for key, item in value.items())
        return "{ " + items + " }"
    raise TypeError(f"no TOML form for {value!r}")


def registry_of(*entries: dict[str, Any]) -> EngineRegistry:
    """Entries through the real TOML parser and schema."""
    return parse_registry(to_toml(*entries), source="test.toml")


def write_registry(path: Path, *entries: dict[str, Any]) -> Path:
    path.write_text(to_toml(*entries), encoding="utf-8")
    return path
