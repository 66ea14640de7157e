"""Publishing a packaged run to the forge: branch, draft request, code scanning, status.

The loop's after-packaging hook. In order, each step an audit event of the run:

1. `forge-branch-pushed`: `factory/<run id>` at the packaged, agent-signed commit, pushed
   from the factory's local bare repository with the factory's (app) token, never forced
   (`review.forges.push`);
2. `pull-request-opened`: a draft request under the SPONSOR's own token (the app token
   never opens one), titled from the ticket, its body the package's summary, risk, rollback
   plan, evidence and provenance;
3. `code-scanning-uploaded`: the package's SARIF evidence as one log (forges with code
   scanning only);
4. `commit-status-set`: the gate's verdict on the commit, with the app token.

A failure stops the steps after it and is `forge-publish-failed` (`step`, `error`: the
error's kind, `status`, `message`: the vendor's words); it never fails the run, which still
waits in review with the truth in the audit log. A request already open on the factory's
branch is adopted only when the forge names the sponsor's own account as its author
(`ForgeHost.user_login` of the sponsor's token); otherwise `forge-publish-failed` with
`error` `forge-foreign-request`.

The request body is Markdown the forge renders, and much of it comes from outside (an
engine's rationale, a repository's paths, check summaries): every outside value is shown
as code (a fence longer than any backtick run in it) or escaped, so it cannot render an
image the forge's proxy fetches, a link, an `@mention` or a heading; the factory's host
paths are left out (package files are named relative to the package).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codefactory.audit.events import (
    CodeScanningUploaded,
    CommitStatusSet,
    ForgeBranchPushed,
    ForgePublishFailed,
    PullRequestOpened,
)
from codefactory.domain import AuditEvent, Run, RunState, TriggerEvent
from codefactory.review.errors import ForgeError
from codefactory.review.forges.errors import ForeignRequest, ForgeApiError
from codefactory.review.forges.naming import forge_repository
from codefactory.review.forges.push import push_branch
from codefactory.review.port import CommitVerdict, ForgeHost, RequestDraft
from codefactory.secret_files import SecretUnreadable

MAX_BODY_CHARS = 60_000
"""GitHub refuses a body over 65,536 characters; the other forges allow more."""
MAX_TITLE_CHARS = 250
MAX_FACTORS = 50
MAX_FACTOR_CHARS = 300
"""Risk reasons shown in the request (the package's `risk.json` keeps them all)."""
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"

Record = Callable[[AuditEvent], object]
"""Appends one audit event in a transaction of its own (`RunRepository.append`)."""


@dataclass(kw_only=True)
class RequestPublishing:
    """Publishes each packaged run (`(run, package_dir) -> None`; never raises)."""

    forge: str
    """`github`, `gitlab`, `azure-devops`, `bitbucket`."""
    host: Callable[[str], ForgeHost]
    """Builds the adapter for the factory's calls on behalf of a person (the sponsor; it
    reads the app token file each time: a rotated token needs no restart)."""
    repository_path: Callable[[str], Path]
    """The factory's local bare repository of a canonical id (`LocalForge.repository_path`)."""
    user_token: Callable[[str], str]
    """A person's own forge token; raises `NoUserToken`."""
    trigger_of: Callable[[Run], TriggerEvent | None]
    record: Record
    hostname: str = ""
    """The configured forge's host name: an id written as an address elsewhere is refused."""
    base_branch: str = "main"
    push_timeout_s: float = 120.0
    ca_file: Path | None = None

    def __call__(self, run: Run, package_dir: Path) -> None:
        """Push, open, upload, set the status; every outcome an audit event, none raises."""
        step = "name repository"
        try:
            name = forge_repository(run.repository, self.forge, hostname=self.hostname)
            step = "connect"
            host = self.host(run.sponsor)
            try:
                step = "push branch"
                self._push(host, run, name)
                step = "open request"
                self._open(host, run, name, package_dir)
                step = "upload SARIF"
                self._sarif(host, run, name, package_dir)
                step = "set commit status"
                self._status(host, run, name, package_dir)
            finally:
                close = getattr(host, "close", None)
                if callable(close):
                    close()
        except (ForgeError, SecretUnreadable, OSError, ValueError, ImportError) as err:
            self.record(
                ForgePublishFailed(
                    actor="factory",
                    run_id=run.id,
                    forge=self.forge,
                    repository=run.repository,
                    step=step,
                    error=err.kind if isinstance(err, ForgeApiError) else type(err).__name__,
                    status=err.status if isinstance(err, ForgeApiError) else 0,
                    message=(err.vendor_message if isinstance(err, ForgeApiError) else str(err))[
                        :500
                    ],
                )
            )

    def _push(self, host: ForgeHost, run: Run, name: str) -> None:
        pushed = push_branch(
            forge=self.forge,
            git_dir=self.repository_path(run.repository),
            remote_url=host.remote_url(name),
            branch=run.branch,
            commit=run.head_commit,
            auth_header=host.push_header(),
            timeout_s=self.push_timeout_s,
            ca_file=self.ca_file,
        )
        self.record(
            ForgeBranchPushed(
                actor="factory",
                run_id=run.id,
                forge=self.forge,
                repository=name,
                remote=pushed.remote_url,
                branch=pushed.branch,
                commit=pushed.commit,
                created=pushed.created,
            )
        )

    def _open(self, host: ForgeHost, run: Run, name: str, package_dir: Path) -> None:
        token = self.user_token(run.sponsor)
        sponsor_login = host.user_login(token)
        local = self.repository_path(run.repository)
        draft = RequestDraft(
            repository=name,
            branch=run.branch,
            base_branch=self.base_branch,
            commit=run.head_commit,
            title=request_title(run, self.trigger_of(run)),
            body=request_body(run, package_dir, host_paths=(str(local), str(local.resolve()))),
        )
        opened = host.open_request(draft, user_token=token)
        author = opened.author_id or opened.author
        if author.strip().casefold() != sponsor_login.strip().casefold():
            raise ForeignRequest(
                self.forge, number=opened.number, branch=run.branch, author=author,
                sponsor_login=sponsor_login,
            )  # fmt: skip
        self.record(
            PullRequestOpened(
                actor="factory",  # with the sponsor's grant: the forge names them its author
                run_id=run.id,
                sponsor=run.sponsor,
                forge=self.forge,
                repository=name,
                number=opened.number,
                url=opened.url,
                author=opened.author,
                commit=run.head_commit,
                branch=run.branch,
            )
        )

    def _sarif(self, host: ForgeHost, run: Run, name: str, package_dir: Path) -> None:
        log = package_sarif(package_dir)
        if log is None:
            return
        upload = host.upload_sarif(
            name, commit=run.head_commit, ref=f"refs/heads/{run.branch}", sarif=log
        )
        if upload is not None:
            self.record(
                CodeScanningUploaded(
                    actor="factory",
                    run_id=run.id,
                    forge=self.forge,
                    repository=name,
                    sarif_id=upload,
                    commit=run.head_commit,
                    sha256=hashlib.sha256(log).hexdigest(),
                )
            )

    def _status(self, host: ForgeHost, run: Run, name: str, package_dir: Path) -> None:
        verdict = gate_verdict(run, package_dir)
        host.set_status(name, run.head_commit, verdict)
        self.record(
            CommitStatusSet(
                actor="factory",
                run_id=run.id,
                forge=self.forge,
                repository=name,
                commit=run.head_commit,
                state=verdict.state,
                description=verdict.description,
            )
        )


def request_title(run: Run, trigger: TriggerEvent | None) -> str:
    """`<ticket id>: <ticket title>` on one line, at most 250 characters."""
    if trigger is None or not trigger.title.strip():
        title = f"Code Factory run {run.id}"
    else:
        title = f"{trigger.external_id}: {trigger.title}" if trigger.external_id else trigger.title
    return " ".join(title.split())[:MAX_TITLE_CHARS]


def _read(package_dir: Path, name: str) -> str:
    path = package_dir / name
    if path.is_symlink() or not path.is_file():
        return ""
    return path.read_text(encoding="utf-8", errors="replace")


def _json(package_dir: Path, name: str) -> dict[str, Any]:
    try:
        data = json.loads(_read(package_dir, name) or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _signer(package_dir: Path, name: str) -> str:
    signatures = _json(package_dir, name).get("signatures") or [{}]
    first = signatures[0] if isinstance(signatures[0], dict) else {}
    return str(first.get("keyid") or "none")


_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
ZWJ = "\u200d"
"""Put after `@` so no forge reads an `@mention` (the text still reads the same)."""


def escaped(text: str) -> str:
    """Outside text as plain Markdown text on one line: every ASCII punctuation character
    backslash-escaped (CommonMark §2.4 allows it for all of them), so no image, link,
    autolink, HTML, emphasis or heading renders, and `@` followed by a zero-width joiner,
    so no mention notifies anyone."""
    flat = " ".join(text.split())
    return _PUNCTUATION.sub(r"\\\1", flat).replace("@", "@" + ZWJ)


def code(text: str, *, cell: bool = False) -> str:
    """Outside text as one inline code span (nothing in it renders): on one line, fenced
    by a backtick run longer than any inside, padded with a space where it starts or
    ends with a backtick (CommonMark §6.1 strips one); in a GFM table `cell`, `|` escaped
    so it cannot split the cell."""
    flat = " ".join(text.split())
    flat = flat.replace("|", "\\|") if cell else flat
    fence = "`" * (max((len(run) for run in re.findall(r"`+", flat)), default=0) + 1)
    pad = " " if flat[:1] in ("`", " ", "") or flat[-1:] in ("`", " ") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def fenced(text: str) -> str:
    """Outside Markdown shown verbatim in a fenced code block whose fence is longer than
    any backtick run inside (CommonMark §4.5), so none of it renders."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text.rstrip()}\n{fence}"


def _scrubbed(text: str, host_paths: Sequence[str]) -> str:
    """`text` without the factory's host paths: each named path (longest first) becomes
    `<factory>`, and a `file://` URL its last segment."""
    for path in sorted({p for p in host_paths if len(p) > 1}, key=len, reverse=True):
        text = text.replace(path, "<factory>")
    return re.sub(r"(?:git\+)?file://\S*?([^/\s`]*)(?=[\s`)]|$)", r"<factory>/\1", text)


def _clipped(text: str) -> str:
    """At most `MAX_FACTOR_CHARS` characters, the cut marked with `…`."""
    return text if len(text) <= MAX_FACTOR_CHARS else text[: MAX_FACTOR_CHARS - 1] + "…"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def request_body(run: Run, package_dir: Path, *, host_paths: Sequence[str] = ()) -> str:
    """The request's Markdown body: provenance first (commit, signer, attestation), then the
    package's risk level and reasons, rollback plan, its files with their SHA-256 digests (a
    reviewer compares them with the attested manifest) and its summary; cut to
    60,000 characters, the cut said. Every outside value is escaped or code (`escaped`,
    `code`, `fenced`); the package folder and `host_paths` (the factory's local
    repository) are not shown: files are named relative to the package."""
    hidden = (str(package_dir), str(package_dir.resolve()), *host_paths)
    risk = _json(package_dir, "risk.json")
    factors = risk.get("factors")
    listed = (
        [f"- {code(_clipped(str(f)))}" for f in factors[:MAX_FACTORS] if str(f).strip()]
        if isinstance(factors, list)
        else []
    )
    evidence = sorted(
        p.relative_to(package_dir).as_posix()
        for p in package_dir.rglob("*")
        if p.is_file() and not p.is_symlink()
    )
    attestation = package_dir / "attestation.dsse.json"
    attested = (
        "sha256:" + hashlib.sha256(attestation.read_bytes()).hexdigest()
        if attestation.is_file()
        else "none"
    )
    head = [
        f"Opened by Code Factory for run {code(run.id)} on behalf of its sponsor "
        f"{code(run.sponsor)}. The change is approved with a signed verdict "
        "(`codefactory review approve`), not by this request's review alone.",
        "",
        "## Provenance",
        "",
        "| | |",
        "| --- | --- |",
        f"| Commit | {code(run.head_commit, cell=True)} on {code(run.branch, cell=True)} (base "
        f"{code(run.base_commit, cell=True)}) |",
        f"| Signed by | agent {code(run.agent_id, cell=True)}, key "
        f"{code(_signer(package_dir, 'provenance.dsse.json'), cell=True)} |",
        f"| Package attestation | {code(attested, cell=True)} (`attestation.dsse.json`, key "
        f"{code(_signer(package_dir, 'attestation.dsse.json'), cell=True)}) |",
        f"| Package | the change package of run {code(run.id, cell=True)}, kept by the factory |",
        "",
        "## Risk",
        "",
        f"**{escaped(str(risk.get('level', 'unknown')))}** "
        f"(score {escaped(str(risk.get('score', '?')))})",
        "",
        *(listed or ["- none"]),
        "",
        "## Rollback plan",
        "",
        fenced(_scrubbed(_read(package_dir, "rollback.md"), hidden))
        if _read(package_dir, "rollback.md").strip()
        else "(none in the package)",
        "",
        "## Evidence (files in the package)",
        "",
        *(f"- {code(path)} sha256 `{_digest(package_dir / path)}`" for path in evidence),
        "",
        "## Summary",
        "",
        "",
    ]
    text = "\n".join(head)
    summary = _scrubbed(_read(package_dir, "summary.md"), hidden).strip()
    room = MAX_BODY_CHARS - len(text) - 400
    cut = len(summary) > room
    if cut:
        summary = summary[: max(room, 0)]
    shown = fenced(summary) if summary else "(none in the package)"
    note = "\n\n(cut here: read `summary.md` in the package)" if cut else ""
    return text + shown + note + "\n"


def package_sarif(package_dir: Path) -> bytes | None:
    """The package's SARIF evidence (`evidence/*.sarif`) as one SARIF 2.1.0 log, each run
    given its own `automationDetails.id` (`codefactory/<file stem>/`) unless it has one, so
    code scanning keeps them apart; None when the package has none."""
    runs: list[Any] = []
    for path in sorted((package_dir / "evidence").glob("*.sarif")):
        if path.is_symlink() or not path.is_file():
            continue
        try:
            log = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        for each in log.get("runs") or () if isinstance(log, dict) else ():
            if isinstance(each, dict):
                each.setdefault("automationDetails", {"id": f"codefactory/{path.stem}/"})
                runs.append(each)
    if not runs:
        return None
    merged = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": runs}
    return json.dumps(merged, sort_keys=True).encode("utf-8")


def gate_verdict(run: Run, package_dir: Path) -> CommitVerdict:
    """`success` when the run was packaged (the gate passed every check), with its risk;
    `failure` otherwise."""
    risk = _json(package_dir, "risk.json").get("level", "unknown")
    if run.state is RunState.PACKAGED:
        return CommitVerdict("success", f"Code Factory gate passed; risk {risk}; run {run.id}")
    return CommitVerdict("failure", f"Code Factory gate did not pass; run {run.id}")
