"""Directory files for tests: people, their sender identities, roles and keys, written as the
TOML `identity.directory.FileDirectory` reads, always outside the data folder.

`write_directory(path, people)` writes any directory; `STANDARD_PEOPLE` are the people the
recorded deliveries and the demo tickets name (the GitHub sender `Codertocat`, the GitLab
user `root`, the Jira account of the ready-status fixture, the Slack user `U2147483697`, the
ServiceNow user `jordan.lee`, and this machine's OS account as a `unix` identity for the
CLI); `standard_directory(folder)` writes them. `tests/conftest.py` points
`CODEFACTORY_IDENTITY__DIRECTORY_FILE` at a session-wide standard directory by default.
"""

from __future__ import annotations

import json
import os
import pwd
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

DIRECTORY_ENV = "CODEFACTORY_IDENTITY__DIRECTORY_FILE"


def os_account() -> str:
    """The OS account running the tests: the CLI's `unix` identity."""
    return pwd.getpwuid(os.getuid()).pw_name


def person(
    name: str = "",
    *,
    roles: Sequence[str] = ("sponsor",),
    email: str = "",
    ssh_keys: Sequence[str] = (),
    **identities: Sequence[str] | str,
) -> dict[str, Any]:
    """One person's entry: `person("Priya Shah", roles=["sponsor"], github="Codertocat")`;
    an identity is a string or a list of strings, keyed by `IdentityKind` value."""
    entry: dict[str, Any] = {"roles": list(roles)}
    if name:
        entry["name"] = name
    if email:
        entry["email"] = email
    if ssh_keys:
        entry["ssh_keys"] = list(ssh_keys)
    if identities:
        entry["identities"] = {
            kind: [values] if isinstance(values, str) else list(values)
            for kind, values in identities.items()
        }
    return entry


def standard_people() -> dict[str, dict[str, Any]]:
    """The people the recorded deliveries and demo tickets name, by person id."""
    return {
        "priya.shah": person(
            "Priya Shah",
            roles=["sponsor"],
            email="priya.shah@bank.example",
            github="Codertocat",
            gitlab="root",
            jira="5b10ac8d82e05b22cc7d4ef5",
            slack="U2147483697",
            unix=os_account(),
        ),
        "jordan.lee": person("Jordan Lee", roles=["sponsor", "reviewer"], servicenow="jordan.lee"),
        "alice": person("Alice", roles=["reviewer"]),
        "carol": person("Carol", roles=["reviewer"]),
    }


STANDARD_PEOPLE = standard_people()


def _toml_value(value: Any) -> str:
    if isinstance(value, Mapping):
        inner = ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def directory_text(people: Mapping[str, Mapping[str, Any]]) -> str:
    """The TOML text of a directory of `people` (person id → entry)."""
    lines: list[str] = []
    for person_id, entry in people.items():
        lines.append(f"[people.{json.dumps(person_id)}]")
        lines += [f"{key} = {_toml_value(value)}" for key, value in entry.items()]
        lines.append("")
    return "\n".join(lines)


def write_directory(path: Path, people: Mapping[str, Mapping[str, Any]]) -> Path:
    """Write a directory file of `people` at `path` (its folder is made); returns `path`.
    Keep `path` outside the data folder: the factory refuses a directory inside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(directory_text(people), encoding="utf-8")
    return path


def standard_directory(folder: Path, more: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
    """`folder/directory.toml` holding `STANDARD_PEOPLE` and `more` (person id → entry;
    an id in both takes `more`'s entry)."""
    return write_directory(folder / "directory.toml", {**standard_people(), **(more or {})})


def directory_env(path: Path) -> dict[str, str]:
    """The environment that points a factory (or the CLI) at the directory file `path`."""
    return {DIRECTORY_ENV: str(path)}
