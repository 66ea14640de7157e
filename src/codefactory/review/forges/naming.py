"""The forge's name of a repository, from the run's canonical id (docs/repositories.md).

| canonical id | forge name |
| --- | --- |
| `acme/payments` | `acme/payments` |
| `github:acme/payments` | `acme/payments` (GitHub only) |
| `gitlab:group/sub/project` | `group/sub/project` (GitLab only) |
| `https://git.example.com/acme/payments(.git)` | `acme/payments` |
| `local:/srv/payments` | refused: `NotPublishable` |

Each segment is `[A-Za-z0-9._-]`, neither `.` nor `..`; GitHub, Azure DevOps and Bitbucket
names have exactly two segments, GitLab's two or more (groups nest).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from codefactory.review.errors import ForgeError

_SEGMENT = re.compile(r"[A-Za-z0-9._-]{1,255}")
_PREFIXES = {"github:": "github", "gitlab:": "gitlab"}


class NotPublishable(ForgeError):
    """The run's repository has no name on the configured forge: a `local:` id, another
    forge's prefix, or an id that is no `owner/name` path."""

    def __init__(self, repository: str, forge: str, reason: str) -> None:
        super().__init__(f"{repository!r} cannot be published to {forge}: {reason}")
        self.repository = repository
        self.forge = forge
        self.reason = reason


def forge_repository(repository: str, forge: str, *, hostname: str = "") -> str:
    """The name of canonical id `repository` on the forge of kind `forge` (`github`,
    `gitlab`, `azure-devops`, `bitbucket`); with `hostname` (the configured forge's), an id
    written as an address must be on that host. Raises `NotPublishable`."""
    if repository.startswith("local:"):
        raise NotPublishable(repository, forge, "a local: repository has no forge of its own")
    path = repository
    for prefix, kind in _PREFIXES.items():
        if repository.startswith(prefix):
            if kind != forge:
                raise NotPublishable(repository, forge, f"the id names a {kind} repository")
            path = repository[len(prefix) :]
            break
    else:
        if repository.startswith(("https://", "http://")):
            found = (urlsplit(repository).hostname or "").casefold()
            if hostname and found != hostname.casefold():
                raise NotPublishable(repository, forge, f"the id names a repository on {found}")
            path = urlsplit(repository).path
            path = path.strip("/").removesuffix(".git")
        elif ":" in repository.split("/", 1)[0]:
            raise NotPublishable(repository, forge, "an id of an unknown kind")
    segments = path.strip("/").split("/")
    for segment in segments:
        if segment in (".", "..") or not _SEGMENT.fullmatch(segment):
            raise NotPublishable(repository, forge, f"{segment!r} is no repository path segment")
    if forge == "gitlab":
        if len(segments) < 2:
            raise NotPublishable(repository, forge, "a GitLab project is group/project")
    elif len(segments) != 2:
        raise NotPublishable(repository, forge, "the forge names a repository owner/name")
    return "/".join(segments)
