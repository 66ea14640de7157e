"""Canonical repository ids: the one name a repository has in the forge, policy, the store,
`runs list` and the dashboard (docs/repositories.md).

A repository is named by what identifies it, never by its folder's name:

- an id the operator configures on its binding (`triggers.repositories.<key>.id`):
  `acme/payments`, `https://git.example.com/acme/payments`;
- else, for a delivery, the binding key it matched when that is a forge's `owner/name`
  (GitHub `repository.full_name`, GitLab `project.path_with_namespace`, with or without a
  `github:` / `gitlab:` prefix), as the trigger carries it;
- else, for a delivery whose key is no forge name (a Jira project key, a Sentry slug, …)
  and for the CLI's `--repo`, the checkout's one id among its bindings (a configured id,
  else the one forge name bound to it);
- else `local:<absolute path>` of the checkout, symbolic links resolved: two checkouts are
  two repositories unless the configuration says they are one.

The id comes from the factory's configuration and the sender, never from the repository's
own files: it is the resource policy authorizes, so a repository must not name itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

LOCAL_PREFIX = "local:"
"""Reserved for the ids of unconfigured checkouts; a configured id may not start with it."""

_ID = re.compile(r'[^\s"\\\x00-\x1f\x7f]{1,512}')
_FORGE_NAME = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+")


def local_id(path: Path) -> str:
    """`local:<absolute path>` of a checkout (`~` expanded, symbolic links resolved)."""
    return LOCAL_PREFIX + str(path.expanduser().resolve())


def check_id(value: str) -> str:
    """`value` if it can be a configured repository id: 1–512 characters, no whitespace,
    control characters, quotes or backslashes, not the reserved `local:` form; else
    `ValueError` saying which rule it breaks."""
    if not _ID.fullmatch(value):
        raise ValueError(
            f"not a repository id: {value!r} (1-512 characters without whitespace, control "
            "characters, quotes or backslashes; e.g. `acme/payments`)"
        )
    if value.startswith(LOCAL_PREFIX):
        raise ValueError(f"{value!r}: ids starting `{LOCAL_PREFIX}` name unconfigured checkouts")
    return value


def forge_name(key: str, sources: Iterable[str]) -> str | None:
    """The `owner/name` a binding key names, without its `<source>:` prefix; None when the
    key is not shaped like a forge's repository name (a Jira key, a Sentry slug, …)."""
    prefix, colon, rest = key.partition(":")
    name = rest if colon and prefix in set(sources) else key
    return name if _FORGE_NAME.fullmatch(name) else None


def ids_by_path(
    bindings: Iterable[tuple[str, Path, str]], sources: Iterable[str]
) -> dict[Path, str]:
    """Each bound checkout's canonical id, from `(key, path, configured id)` triples, paths
    resolved: the one configured id of its bindings, else the one forge name among their
    keys, else (none, or several that disagree) `local:<path>`."""
    known = tuple(sources)
    explicit: dict[Path, set[str]] = {}
    named: dict[Path, set[str]] = {}
    for key, path, configured in bindings:
        resolved = path.expanduser().resolve()
        explicit.setdefault(resolved, set())
        named.setdefault(resolved, set())
        if configured:
            explicit[resolved].add(configured)
        elif (name := forge_name(key, known)) is not None:
            named[resolved].add(name)
    ids: dict[Path, str] = {}
    for path, configured_ids in explicit.items():
        candidates = configured_ids or named[path]
        ids[path] = next(iter(candidates)) if len(candidates) == 1 else local_id(path)
    return ids
