"""Pushing a review branch from the factory's local bare repository to the forge.

Plain `git push` of `<commit>:refs/heads/<branch>` over HTTPS (smart HTTP, RFC-less but
git's documented `gitprotocol-http`), never forced: a branch the forge already holds at
another commit is `ForgeConflict`, one at the same commit is left as it is (a republished run
pushes nothing). The credential travels as `http.extraHeader` given through git's
`GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n` environment, so it is never in
argv (`ps`) or a config file; git runs with no system or user configuration, no hooks, no
credential helper, no prompts, no redirects and a deadline.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from codefactory.review.forges.errors import (
    ForgeApiError,
    ForgeConflict,
    ForgeForbidden,
    ForgeNotFound,
    ForgeRateLimited,
    ForgeUnauthorized,
    ForgeUnavailable,
)

_OBJECT_ID = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
_BRANCH = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")
_HTTP_STATUS = re.compile(r"returned error: (\d{3})")
CALL = "push branch"


@dataclass(frozen=True)
class Pushed:
    """The branch as the forge holds it after the push."""

    remote_url: str
    branch: str
    commit: str
    created: bool
    """False: the forge held the branch at this commit already; nothing was sent."""


def push_branch(
    *,
    forge: str,
    git_dir: Path,
    remote_url: str,
    branch: str,
    commit: str,
    auth_header: str,
    timeout_s: float = 120.0,
    ca_file: Path | None = None,
) -> Pushed:
    """Push `commit` (present in the bare repository `git_dir`) as `refs/heads/<branch>` of
    `remote_url` (https, http on loopback or file; no user info) with `Authorization:
    auth_header`. Raises `ForgeConflict` (the branch exists at another commit, or moved
    while pushing), `ForgeUnauthorized`/`ForgeForbidden`/`ForgeNotFound`/`ForgeRateLimited`
    from the forge's HTTP answer, `ForgeUnavailable` (unreachable, timed out, git failed),
    `ValueError` for a malformed branch, commit or URL."""
    if not _OBJECT_ID.fullmatch(commit):
        raise ValueError(f"not a full commit id: {commit!r}")
    if not _BRANCH.fullmatch(branch) or ".." in branch or branch.endswith((".lock", ".")):
        raise ValueError(f"invalid branch name: {branch!r}")
    parts = urlsplit(remote_url)
    if parts.scheme not in ("https", "http", "file") or parts.username or parts.password:
        raise ValueError("the remote is an https URL without user info")
    if "\n" in auth_header or "\r" in auth_header:
        raise ValueError("the Authorization header holds a line break")
    git = _Git(forge, git_dir, auth_header, timeout_s, ca_file)
    git.run("cat-file", "-e", f"{commit}^{{commit}}")  # the packaged commit is here
    ref = f"refs/heads/{branch}"
    existing = git.remote_head(remote_url, ref)
    if existing == commit:
        return Pushed(remote_url=remote_url, branch=branch, commit=commit, created=False)
    if existing is not None:
        raise ForgeConflict(forge, CALL, 409, f"{branch} exists at {existing}, not {commit}")
    try:
        git.run("push", "--porcelain", "--no-verify", remote_url, f"{commit}:{ref}")
    except ForgeApiError:
        now = git.remote_head(remote_url, ref)  # raced by another push, or refused?
        if now == commit:
            return Pushed(remote_url=remote_url, branch=branch, commit=commit, created=False)
        if now is not None:
            raise ForgeConflict(forge, CALL, 409, f"{branch} moved to {now}") from None
        raise
    return Pushed(remote_url=remote_url, branch=branch, commit=commit, created=True)


class _Git:
    def __init__(
        self, forge: str, git_dir: Path, header: str, timeout_s: float, ca_file: Path | None
    ) -> None:
        binary = shutil.which("git")
        if binary is None:
            raise ForgeUnavailable(forge, CALL, 0, "git is not installed")
        self.forge = forge
        self.binary = binary
        self.git_dir = git_dir
        self.header = header
        self.timeout_s = timeout_s
        settings = [
            ("http.extraHeader", f"Authorization: {header}"),
            ("core.hooksPath", "/dev/null"),
            ("credential.helper", ""),
            ("http.followRedirects", "false"),
            ("protocol.allow", "never"),
            ("protocol.https.allow", "always"),
            ("protocol.http.allow", "always"),
            ("protocol.file.allow", "always"),
            ("push.gpgSign", "false"),
            ("push.recurseSubmodules", "no"),
        ]
        if ca_file is not None:
            settings.append(("http.sslCAInfo", str(ca_file)))
        self.env = {
            "PATH": os.pathsep.join([str(Path(binary).parent), os.defpath]),
            "HOME": str(git_dir),
            "GIT_DIR": str(git_dir),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "/bin/false",
            "GIT_ATTR_NOSYSTEM": "1",
            "LC_ALL": "C",
            "GIT_CONFIG_COUNT": str(len(settings)),
        }
        for index, (key, value) in enumerate(settings):
            self.env[f"GIT_CONFIG_KEY_{index}"] = key
            self.env[f"GIT_CONFIG_VALUE_{index}"] = value

    def remote_head(self, url: str, ref: str) -> str | None:
        out = self.run("ls-remote", "--refs", url, ref)
        for line in out.splitlines():
            sha, _, name = line.partition("\t")
            if name == ref:
                return sha.strip()
        return None

    def run(self, *args: str) -> str:
        try:
            proc = subprocess.run(  # noqa: S603 - argv built here, never through a shell
                [self.binary, *args],
                cwd=self.git_dir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=self.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ForgeUnavailable(
                self.forge, CALL, 0, f"git {args[0]} timed out after {self.timeout_s:g} s"
            ) from None
        if proc.returncode == 0:
            return proc.stdout.decode("utf-8", "replace")
        said = (proc.stderr + proc.stdout).decode("utf-8", "replace").replace(self.header, "***")
        raise _failure(self.forge, args[0], said.strip())


def _failure(forge: str, command: str, said: str) -> ForgeApiError:
    """git's words mapped to the named error of the HTTP answer behind them."""
    message = f"git {command}: {said}"
    found = _HTTP_STATUS.search(said)
    status = int(found.group(1)) if found else 0
    lowered = said.lower()
    if status == 401 or "authentication failed" in lowered or "could not read username" in lowered:
        return ForgeUnauthorized(forge, CALL, 401, message)
    if status == 403 or "remote rejected" in lowered:
        return ForgeForbidden(forge, CALL, status or 403, message)
    if status == 404 or "not found" in lowered:
        return ForgeNotFound(forge, CALL, 404, message)
    if status == 429:
        return ForgeRateLimited(forge, CALL, 429, message, None)
    if "[rejected]" in said or "non-fast-forward" in lowered or "fetch first" in lowered:
        return ForgeConflict(forge, CALL, 409, message)
    return ForgeUnavailable(forge, CALL, status, message)
