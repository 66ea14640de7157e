"""Git smart HTTP on the loopback: `git http-backend` (git's own CGI program) behind a small
threaded HTTP server, serving the bare repositories under `root` (`<root>/<path>.git`), at
`/<path>.git/…` or, as Azure DevOps names them, `/<project>/_git/<repo>/…` (the repository
`<project>/_git/<repo>`: `create("Payments/_git/payments-api")`).

Every request must carry the `Authorization` header the stand-in was given (else `401` with
`WWW-Authenticate: Basic`, as a forge answers); a repository that was not `create`d is a
`404`. `fail_next(status)` answers the next request with `status` instead. Each request is
recorded (`requests`: method, path, query, the Authorization it carried).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

GIT = shutil.which("git") or "git"
_CLEAN_GIT = {
    "PATH": os.environ.get("PATH", os.defpath),
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "LC_ALL": "C",
    "GIT_AUTHOR_NAME": "Forge Test",
    "GIT_AUTHOR_EMAIL": "forge-test@example.invalid",
    "GIT_COMMITTER_NAME": "Forge Test",
    "GIT_COMMITTER_EMAIL": "forge-test@example.invalid",
}


def _backend() -> str:
    found = subprocess.run(  # noqa: S603
        [GIT, "--exec-path"], capture_output=True, text=True, check=True, env=_CLEAN_GIT
    )
    return str(Path(found.stdout.strip()) / "git-http-backend")


def git(cwd: Path, *args: str) -> str:
    """Plain git in `cwd` with no user or system configuration; stdout stripped."""
    done = subprocess.run(  # noqa: S603
        [GIT, *args], cwd=cwd, capture_output=True, text=True, env=_CLEAN_GIT, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {args[0]} failed: {done.stderr}")
    return done.stdout.strip()


@dataclass(frozen=True)
class GitRequest:
    method: str
    path: str
    query: str
    authorization: str


class GitHttpStandin:
    """Bare repositories served over git's smart HTTP protocol, as a forge's git host."""

    def __init__(self, root: Path, *, authorization: str) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.authorization = authorization
        self.requests: list[GitRequest] = []
        self.faults: list[int] = []
        self.argv_leaks: list[str] = []
        """Command lines of this machine's processes that held the credential while a
        request was served (the pushing git is alive then): the push must keep it out."""
        self.backend = _backend()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                standin._serve(self)

            do_GET = do_POST = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def create(self, name: str, *, seed: Path | None = None) -> Path:
        """The bare repository of `name` (`acme/payments`), holding `seed`'s branches (a
        checkout) when given, as a forge holds a repository before the factory pushes."""
        bare = self.root / f"{name}.git"
        bare.parent.mkdir(parents=True, exist_ok=True)
        if seed is not None:
            git(self.root, "clone", "--quiet", "--bare", str(seed), str(bare))
        else:
            git(self.root, "init", "--quiet", "--bare", str(bare))
        git(bare, "config", "http.receivepack", "true")
        return bare

    def head(self, name: str, branch: str) -> str | None:
        """The commit `branch` of `name` points at, or None."""
        try:
            return git(self.root / f"{name}.git", "rev-parse", "--verify", f"refs/heads/{branch}")
        except RuntimeError:
            return None

    def has_commit(self, name: str, commit: str) -> bool:
        try:
            git(self.root / f"{name}.git", "cat-file", "-e", f"{commit}^{{commit}}")
        except RuntimeError:
            return False
        return True

    def exists(self, name: str) -> bool:
        return (self.root / f"{name}.git" / "HEAD").is_file()

    def fail_next(self, status: int) -> None:
        """Answer the next request with `status` (the forge's plain-text body)."""
        self.faults.append(status)

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        authorization = handler.headers.get("Authorization", "")
        self.requests.append(GitRequest(handler.command, parts.path, parts.query, authorization))
        body = _read_body(handler)
        self.argv_leaks.extend(_argv_holding(self.authorization.split()[-1].encode()))
        if self.faults:
            status = self.faults.pop(0)
            return _plain(handler, status, f"fault {status}\n")
        if authorization != self.authorization:
            return _plain(
                handler,
                401,
                "HTTP Basic: Access denied\n",
                {"WWW-Authenticate": 'Basic realm="forge"'},
            )
        repository, path_info = _repository_path(parts.path)
        if not repository or ".." in repository or not self.exists(repository):
            return _plain(handler, 404, "Repository not found\n")
        env = {
            **_CLEAN_GIT,
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": path_info,
            "QUERY_STRING": parts.query,
            "REQUEST_METHOD": handler.command,
            "CONTENT_TYPE": handler.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "factory",
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_PROTOCOL": handler.headers.get("Git-Protocol", ""),
        }
        if handler.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = handler.headers["Content-Encoding"]
        done = subprocess.run(  # noqa: S603
            [self.backend], input=body, capture_output=True, env=env, check=False
        )
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        status = 200
        headers: dict[str, str] = {}
        for line in head.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.strip().split()[0])
            elif key:
                headers[key] = value.strip()
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)


_AZURE_GIT = re.compile(r"/(?P<project>[^/]+)/_git/(?P<repo>[^/]+?)(?:\.git)?(?P<rest>/.*)")


def _repository_path(path: str) -> tuple[str, str]:
    """The repository a request path names and the `PATH_INFO` for `git http-backend`:
    `/<name>.git/<rest>` (GitHub, GitLab, Bitbucket), or Azure DevOps'
    `/<project>/_git/<repo>/<rest>`, served from `<root>/<project>/_git/<repo>.git`;
    ("", "") for any other path."""
    if ".git/" in path:
        return path.split(".git/", 1)[0].lstrip("/"), path
    azure = _AZURE_GIT.fullmatch(path)
    if azure is None:
        return "", ""
    name = f"{azure['project']}/_git/{azure['repo']}"
    return name, f"/{name}.git{azure['rest']}"


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                handler.rfile.readline()
                return b"".join(chunks)
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def _plain(
    handler: BaseHTTPRequestHandler, status: int, text: str, headers: dict[str, str] | None = None
) -> None:
    data = text.encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "text/plain")
    handler.send_header("Content-Length", str(len(data)))
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(data)


def _argv_holding(secret: bytes) -> list[str]:
    """The command lines (`/proc/<pid>/cmdline`) that contain `secret`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes()
        except OSError:
            continue
        if secret in argv:
            found.append(argv.replace(b"\0", b" ").decode("utf-8", "replace"))
    return found
