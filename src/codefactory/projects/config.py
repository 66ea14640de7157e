"""The repository config, `.codefactory/config.toml` (docs/repository-config.md).

It says how to set a project up and test it, for what detection cannot work out; it never
widens authority: network hosts, paths, rounds, engines, limits and policy come from the
factory's policy only, so a key naming one is refused by name, as is any key not in the
schema (a typo must not silently change nothing).
"""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Mapping

from codefactory.projects.model import CustomCheck, FileSource, RepositoryConfig

CONFIG_DIR = ".codefactory"
CONFIG_PATH = f"{CONFIG_DIR}/config.toml"
SKIPPABLE_CHECKS = frozenset({"lint", "tests"})
"""Checks a repository may turn off for itself. Security controls (sast, sca, secrets,
diff_policy, integrity) are policy's to waive, never the repository's."""
AUTHORITY_KEYS = frozenset({
    "network", "hosts", "allow_hosts", "allowed_hosts", "egress", "proxy", "index_url",
    "extra_index_url", "paths", "allowed_paths", "scope", "rounds", "max_rounds", "policy",
    "policies", "engine", "engines", "model", "budget", "limits", "timeout", "timeout_s",
    "sandbox", "secrets", "env", "environment", "approvers", "reviewers", "sponsor",
})  # fmt: skip
"""Keys that would widen what a run may do; named in the refusal so the author knows why."""
FACTORY_CHECKS = frozenset({
    "diff_policy", "integrity", "lint", "eslint", "secrets", "sast", "sca", "tests",
    "js-tests", "setup",
})  # fmt: skip
"""The factory's own checks (`verify.compose`) and the setup phase: an added check may not
take one of their names, so no report line, finding or evidence file can pass for theirs."""
CHECK_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
"""An added check's name: lower-case letters, digits, `_` and `-`, at most 64 characters,
so that it is one plain file name (`repo-<name>.sarif`) and never a path."""
_SCHEMA: dict[str, object] = {
    "python": str,
    "setup": {"commands": list, "replace": bool},
    "test": {"command": (list, str), "paths": list},
    "checks": {"skip": list, "add": list},
}


class RepositoryConfigInvalid(ValueError):
    """`.codefactory/config.toml` cannot be used; `key` is the dotted key at fault (empty
    when the file as a whole is unreadable)."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        where = f"{CONFIG_PATH}: `{key}` " if key else f"{CONFIG_PATH}: "
        super().__init__(where + reason)


def read_config(files: FileSource) -> RepositoryConfig:
    """The repository config `files` hold; the empty config when there is none.

    Raises `RepositoryConfigInvalid` naming the first key it refuses, or (with an empty key)
    when `.codefactory` or `.codefactory/config.toml` is a symbolic link: the config must be
    the regular file at that path, since the integrity check judges a change to the config by
    that path and would not see an edit of a link's target elsewhere in the tree.
    """
    for path in (CONFIG_DIR, CONFIG_PATH):
        if files.is_link(path):
            raise RepositoryConfigInvalid(
                "",
                f"`{path}` is a symbolic link: the repository config must be a regular file "
                f"committed at {CONFIG_PATH} (a change to it is judged by that path, never "
                "through a link); replace the link by the folder and file themselves",
            )
    data = files.read(CONFIG_PATH)
    if data is None:
        return RepositoryConfig()
    return parse_config(data)


def parse_config(data: bytes) -> RepositoryConfig:
    """Parse the bytes of a repository config (TOML 1.0, UTF-8) into a `RepositoryConfig`.
    Raises `RepositoryConfigInvalid` (never another error) for anything it cannot use."""
    try:
        table = tomllib.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise RepositoryConfigInvalid("", f"is not valid TOML: {err}") from err
    except (RecursionError, MemoryError) as err:
        raise RepositoryConfigInvalid(
            "", f"is nested too deeply (or too large) to read: {type(err).__name__}"
        ) from None
    _check_keys(table, _SCHEMA, "")
    setup = table.get("setup", {})
    test = table.get("test", {})
    checks = table.get("checks", {})
    return RepositoryConfig(
        setup=_strings(setup.get("commands", []), "setup.commands"),
        replace_setup=setup.get("replace", False),
        test_command=_command(test["command"], "test.command") if "command" in test else None,
        test_paths=_paths(test.get("paths", []), "test.paths"),
        skip_checks=_skips(checks.get("skip", [])),
        add_checks=_added(checks.get("add", [])),
        python=_python(table.get("python")),
        source=CONFIG_PATH,
    )


def _check_keys(table: Mapping[str, object], schema: Mapping[str, object], prefix: str) -> None:
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        authority = key in AUTHORITY_KEYS or key.replace("-", "_") in AUTHORITY_KEYS
        if key not in schema and authority:
            raise RepositoryConfigInvalid(
                dotted,
                "would widen authority: network hosts, paths, rounds, engines and limits come "
                "from the factory's policy, never from the repository",
            )
        if key not in schema:
            known = ", ".join(f"`{prefix}{k}`" for k in schema)
            raise RepositoryConfigInvalid(dotted, f"is not a known key (known: {known})")
        expected = schema[key]
        if isinstance(expected, dict):
            if not isinstance(value, dict):
                raise RepositoryConfigInvalid(dotted, "must be a table")
            _check_keys(value, expected, f"{dotted}.")
        elif not isinstance(value, expected):  # type: ignore[arg-type]
            raise RepositoryConfigInvalid(dotted, f"has the wrong type ({type(value).__name__})")


def _strings(value: object, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise RepositoryConfigInvalid(key, "must be a list of non-empty strings")
    return tuple(value)


def _command(value: object, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            argv = shlex.split(value)
        except ValueError as err:
            raise RepositoryConfigInvalid(key, f"cannot be split into words: {err}") from err
        if not argv:
            raise RepositoryConfigInvalid(key, "is empty")
        return tuple(argv)
    return _strings(value, key)


def _paths(value: object, key: str) -> tuple[str, ...]:
    paths = _strings(value, key)
    for path in paths:
        if path.startswith("/") or ".." in path.split("/"):
            raise RepositoryConfigInvalid(key, f"names {path!r}, which is outside the repository")
    return paths


def _skips(value: object) -> frozenset[str]:
    names = _strings(value, "checks.skip")
    for name in names:
        if name not in SKIPPABLE_CHECKS:
            allowed = ", ".join(sorted(SKIPPABLE_CHECKS))
            raise RepositoryConfigInvalid(
                "checks.skip",
                f"names {name!r}: a repository may skip only {allowed}; security checks are "
                "waived by policy, never by the repository",
            )
    return frozenset(names)


def _added(value: object) -> tuple[CustomCheck, ...]:
    if not isinstance(value, list):
        raise RepositoryConfigInvalid("checks.add", "must be an array of tables")
    checks = []
    for i, entry in enumerate(value):
        key = f"checks.add[{i}]"
        if not isinstance(entry, dict):
            raise RepositoryConfigInvalid(key, "must be a table with `name` and `command`")
        _check_keys(entry, {"name": str, "command": (list, str)}, f"{key}.")
        if "name" not in entry or "command" not in entry:
            raise RepositoryConfigInvalid(key, "needs both `name` and `command`")
        name = entry["name"]
        if not CHECK_NAME.fullmatch(name):
            raise RepositoryConfigInvalid(
                f"{key}.name",
                f"{name!r} is not a check name: lower-case letters, digits, `_` and `-`, "
                "starting with a letter or digit, at most 64 characters",
            )
        if name in FACTORY_CHECKS:
            raise RepositoryConfigInvalid(
                f"{key}.name", f"{name!r} is the name of a factory check: choose another"
            )
        checks.append(CustomCheck(name=name, command=_command(entry["command"], f"{key}.command")))
    names = [c.name for c in checks]
    if len(set(names)) != len(names):
        raise RepositoryConfigInvalid("checks.add", "names the same check twice")
    return tuple(checks)


def _python(value: object) -> str | None:
    if value is None:
        return None
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version

    text = str(value).strip()
    try:
        Version(text)
        return text
    except InvalidVersion:
        pass
    try:
        SpecifierSet(text)
        return text
    except InvalidSpecifier:
        raise RepositoryConfigInvalid(
            "python", f"{text!r} is neither a version (3.12) nor a PEP 440 specifier (>=3.12)"
        ) from None
