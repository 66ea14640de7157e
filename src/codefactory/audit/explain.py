"""`audit explain RUN`: the answer to an examiner's questions about one change, with proofs.

Who is the agent and who issued it; on whose behalf it acted and under which delegation;
what triggered the run, which person caused it, and what policy decided; every step with
its audit index; the commit and what `git verify-commit` says of its signature; the
approvals with the fingerprint of the key that signed each verdict and the digest of the
statement kept in the package; the regulated track (the forge request and its approvals,
the change request and the CAB's word, each QA and UAT sign-off with its statement digest,
the merge: `audit/regulated_track.py`); and, for every event cited, an RFC 9162 inclusion proof
against a freshly signed checkpoint, verified here.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rich.console import Console
from rich.table import Table

from codefactory.audit.errors import AuditError
from codefactory.audit.events import (
    ForgeApprovalRecorded,
    PolicyDecided,
    ReviewSigned,
    RunStateChanged,
    typed,
)
from codefactory.audit.merkle import verify_inclusion
from codefactory.audit.port import AuditLog, AuditRecord, SignedCheckpoint
from codefactory.audit.regulated_track import regulated_track, track_items
from codefactory.terminal import shown

if TYPE_CHECKING:
    from codefactory.identity.delegation import DelegationAuthority
    from codefactory.identity.directory import Directory
    from codefactory.identity.port import CheckpointIssuer
    from codefactory.identity.registry import SqlAgentRegistry
    from codefactory.identity.trust import TrustRoots
    from codefactory.store.port import RunRepository


class CommitSignature(Protocol):
    """What git says of a commit's SSH signature (`review.signing.CommitSignature` is one)."""

    @property
    def status(self) -> str:
        """git's `%G?` letter: G good, B bad, N unsigned, E cannot be checked, ..."""
        ...

    @property
    def good(self) -> bool: ...

    @property
    def signer(self) -> str: ...

    @property
    def fingerprint(self) -> str: ...

    def describe(self) -> str:
        """One line for a reader."""
        ...


class CommitUnverifiable(AuditError):
    """The forge cannot tell anything of the commit (no such repository or commit)."""


CommitVerifier = Callable[[str, str, Path], CommitSignature]
"""`(repository, commit sha, allowed_signers file)` → git's verdict on the commit's SSH
signature; raises `CommitUnverifiable` when the forge cannot tell. Built by the caller
(`codefactory.factory.commit_verifier`, the local forge), so audit/ never imports review/."""


class _Identity(Protocol):
    @property
    def issuer(self) -> CheckpointIssuer: ...

    @property
    def agents(self) -> SqlAgentRegistry: ...

    @property
    def delegation(self) -> DelegationAuthority: ...

    @property
    def directory(self) -> Directory: ...

    @property
    def trust(self) -> TrustRoots | None: ...


class ExplainSources(Protocol):
    """What `explain_run` reads: the runs, the audit log and identity (the factory,
    `codefactory.factory.Factory`, is one)."""

    @property
    def store(self) -> RunRepository: ...

    @property
    def audit(self) -> AuditLog: ...

    @property
    def identity(self) -> _Identity: ...


def explain_run(
    factory: ExplainSources, run_id: str, *, commits: CommitVerifier
) -> dict[str, Any] | None:
    """Everything `audit explain` shows, as data; None if there is no such run. Commits and
    provenance are checked against the pinned agent keys when a trust file is set; `commits`
    reads the run's commit signature from the forge."""
    from codefactory.identity.published import pinned_ssh_key

    run = factory.store.get_run(run_id)
    if run is None:
        return None
    identity = factory.identity
    agent = identity.agents.get(run.agent_id)
    trigger = factory.store.get_trigger(run.trigger_id)
    package = factory.store.get_package(run_id)
    events = factory.audit.events(run_id)
    signed = factory.audit.checkpoint()
    packaged = _package_state(package, events, identity.issuer.public_keys())
    return {
        "run": {
            "id": run.id,
            "state": run.state.value,
            "reason": run.reason,
            "kind": run.kind.value,
            "repository": run.repository,
        },
        "agent": _agent(agent) if agent else {"id": run.agent_id, "status": "unknown"},
        "issuer": {
            "name": identity.issuer.name,
            "keys": [key.kid for key in identity.issuer.public_keys()],
        },
        "sponsor": run.sponsor,
        "delegation": identity.delegation.inspect(run_id),
        "trigger": _trigger(trigger) if trigger else None,
        "decisions": factory.store.decisions(run_id),
        "steps": [_step(record) for record in events],
        "commit": _commit(commits, identity, run.repository, _attested(package, packaged))
        if package
        else None,
        "provenance": _provenance(package, pinned_ssh_key(agent, identity.trust)),
        "package": packaged,
        "approvals": _checked(
            _approvals(factory.store.reviews(run_id), events),
            run_id,
            package,
            identity.directory,
        ),
        "regulated_track": _checked_sign_offs(
            regulated_track(events), run_id, package, identity.directory
        ),
        "checkpoint": {
            **signed.checkpoint.as_dict(),
            "note": signed.note,
            "verifier_key": signed.verifier_key,
        },
        "proofs": [_proof(factory.audit, record, signed) for record in events],
    }


def _agent(agent: Any) -> dict[str, Any]:
    return {
        "id": agent.id,
        "display_name": agent.display_name,
        "issuer": agent.issuer,
        "owner": agent.owner,
        "status": agent.status.value,
        "engines": list(agent.engines),
        "ssh_public_key": agent.ssh_public_key,
    }


def _trigger(trigger: Any) -> dict[str, Any]:
    return {
        "source": trigger.source,
        "external_id": trigger.external_id,
        "actor": trigger.actor,
        "title": trigger.title,
        "payload_digest": trigger.payload_digest,
        "received_at": trigger.received_at.isoformat(),
        "sender_kind": getattr(trigger, "sender_kind", ""),
        "sender": getattr(trigger, "sender", ""),
        "caused_by": getattr(trigger, "caused_by", ""),
    }


def _approvals(reviews: list[dict[str, Any]], events: list[AuditRecord]) -> list[dict[str, Any]]:
    """Each verdict with what proves it, matched by person and verdict, in order: the
    `review-signed` event (the signed statement's digest, the signing key's fingerprint and
    where the package keeps the statement), or for an approval given on the forge its
    `forge-approval-recorded` event (`forge`: forge, request, review id; no statement)."""
    proofs = [e for e in map(typed, events) if isinstance(e, ReviewSigned | ForgeApprovalRecorded)]
    approvals = []
    for review in reviews:
        proof = next((p for p in proofs if _proves(p, review)), None)
        if proof is not None:
            proofs.remove(proof)
        approvals.append({**review, **_evidence(proof)})
    return approvals


def _evidence(proof: ReviewSigned | ForgeApprovalRecorded | None) -> dict[str, Any]:
    """What an approval's event proves: the signed statement, or where the forge approved."""
    match proof:
        case ReviewSigned():
            return {
                "statement_digest": proof.statement_digest,
                "key_fingerprint": proof.key_fingerprint,
                "package_digest": proof.package_digest,
                "statement": proof.statement,
                "forge": {},
            }
        case ForgeApprovalRecorded(forge=forge, request=request, review_id=review_id):
            where = {"forge": forge, "request": request, "review_id": review_id}
        case None:
            where = {}
    keys = ("statement_digest", "key_fingerprint", "package_digest", "statement")
    return {**dict.fromkeys(keys, ""), "forge": where}


def _proves(event: ReviewSigned | ForgeApprovalRecorded, review: dict[str, Any]) -> bool:
    if event.actor != f"user:{review['reviewer']}":
        return False
    if isinstance(event, ForgeApprovalRecorded):
        return bool(review["approved"])
    return event.verdict == ("approve" if review["approved"] else "reject")


def _checked(
    approvals: list[dict[str, Any]], run_id: str, package: dict[str, Any] | None, directory: Any
) -> list[dict[str, Any]]:
    """Each approval with its kept statement verified again against the directory (an
    event alone proves an append, not a person's word): `verified` true, or `problem`."""
    from codefactory.identity.directory import Role
    from codefactory.identity.statements import REVIEW_TYPE, StatementVerifier

    verifier = StatementVerifier(directory)
    for approval in approvals:
        approval.update(
            _kept_statement(
                verifier,
                package,
                approval,
                statement_type=REVIEW_TYPE,
                claimed=str(approval["reviewer"]),
                role=Role.REVIEWER,
                expect={"run_id": run_id, "package_digest": approval["package_digest"]},
            )
        )
    return approvals


def _checked_sign_offs(
    track: dict[str, list[dict[str, Any]]],
    run_id: str,
    package: dict[str, Any] | None,
    directory: Any,
) -> dict[str, list[dict[str, Any]]]:
    """The track with each signed QA or UAT sign-off's kept statement verified again against
    the directory, as approvals are (`_checked`): `verified` true, or `problem`."""
    from codefactory.identity.directory import Role
    from codefactory.identity.statements import SIGN_OFF_TYPE, StatementVerifier

    verifier = StatementVerifier(directory)
    roles = {"qa": Role.QA, "uat": Role.UAT}
    for item in track.get("sign_offs", []):
        stage = str(item.get("stage", ""))
        if item["event"] != "sign-off-signed" or stage not in roles:
            continue
        item.update(
            _kept_statement(
                verifier,
                package,
                item,
                statement_type=SIGN_OFF_TYPE,
                claimed=str(item["actor"]).removeprefix("user:"),
                role=roles[stage],
                expect={"run_id": run_id, "stage": stage, "verdict": str(item["verdict"])},
            )
        )
    return track


def _kept_statement(
    verifier: Any,
    package: dict[str, Any] | None,
    cited: dict[str, Any],
    **verify: Any,
) -> dict[str, Any]:
    """`verified` and `problem` for the statement the package keeps at `cited["statement"]`,
    which the log names by `cited["statement_digest"]` (its signature beside it, `.sig`)."""
    from codefactory.identity.statements import StatementRefused

    path = Path(package["directory"]) / cited["statement"] if package else None
    if path is None or not cited.get("statement"):
        return {"verified": False, "problem": "no signed statement is kept"}
    try:
        body = path.read_bytes()
        signature = path.with_name(path.name + ".sig").read_text(encoding="ascii")
        verified = verifier.verify(body, signature, used=lambda _: False, fresh=False, **verify)
    except (OSError, UnicodeDecodeError) as err:
        return {"verified": False, "problem": f"unreadable: {err}"}
    except StatementRefused as err:
        return {"verified": False, "problem": err.reason}
    same = verified.digest == cited["statement_digest"]
    return {"verified": same, "problem": "" if same else "not the statement the log names"}


def _step(record: AuditRecord) -> dict[str, Any]:
    return {
        "index": record.seq,
        "name": record.name,
        "actor": record.actor,
        "at": record.at.isoformat(),
        "summary": summarize(record),
        "leaf_hash": record.leaf_hash,
    }


def summarize(record: AuditRecord) -> str:
    """One line on what an event says."""
    match typed(record):
        case RunStateChanged(previous=previous, state=state, reason=reason):
            return f"{previous} → {state}" + (f": {reason}" if reason else "")
        case PolicyDecided(stage=stage, action=action, allowed=allowed, policy_ids=ids):
            return f"{stage} {action}: {'allowed' if allowed else 'denied'} by {ids}"
    data = record.data
    keys = ("action", "reason", "engine", "check", "passed", "commit", "jti", "connector")
    return ", ".join(f"{key}={data[key]}" for key in keys if key in data)


def _commit(
    commits: CommitVerifier,
    identity: _Identity,
    repository: str,
    package: dict[str, Any] | None,
) -> dict[str, Any] | None:
    from codefactory.identity.published import allowed_signers

    if package is None:
        return None
    commit = {"sha": package["commit"], "branch": package["branch"]}
    with tempfile.TemporaryDirectory() as scratch:
        signers = Path(scratch) / "allowed_signers"
        signers.write_text(allowed_signers(identity.agents.search(), trust=identity.trust))
        try:
            signature = commits(repository, package["commit"], signers)
        except CommitUnverifiable as err:
            return {**commit, "signature": {"status": "E", "describe": str(err)}}
    return {
        **commit,
        "signature": {
            "status": signature.status,
            "good": signature.good,
            "signer": signature.signer,
            "fingerprint": signature.fingerprint,
            "describe": signature.describe(),
        },
    }


def _provenance(package: dict[str, Any] | None, ssh_public_key: str) -> dict[str, Any] | None:
    """Check `provenance.dsse.json` against the agent's (pinned) key (DSSE over its PAE)."""
    from codefactory.package.provenance import FILE_NAME, ProvenanceInvalid, verify_provenance

    if package is None:
        return None
    folder = Path(package["directory"])
    path = folder / FILE_NAME
    try:
        verified = verify_provenance(folder, ssh_public_key)
    except ProvenanceInvalid as err:
        return {"path": str(path), "verified": False, "problem": err.problem}
    return {"path": str(path), "verified": True, "subject": verified.subject}


def _attested(
    package: dict[str, Any] | None, packaged: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The package row with the commit the issuer attested (the row is editable)."""
    attested = (packaged or {}).get("attested_commit")
    return {**package, "commit": attested} if package and attested else package


def _package_state(
    package: dict[str, Any] | None, events: list[AuditRecord], issuer_keys: list[Any]
) -> dict[str, Any] | None:
    """The package as it is now, re-hashed, against what the issuer attested at build time
    and what each signed approval named: `changed_after_approval` when the files no longer
    hash to an approved digest."""
    from codefactory.package.attestation import AttestationInvalid, verify_attestation
    from codefactory.package.manifest import PackageAltered, package_digest

    if package is None:
        return None
    folder = Path(package["directory"])
    approved = [
        event.package_digest
        for event in map(typed, events)
        if isinstance(event, ReviewSigned) and event.verdict == "approve"
    ]
    state: dict[str, Any] = {"directory": str(folder), "approved_digests": approved}
    try:
        current = package_digest(folder)
        state["digest"], state["problem"] = current, ""
    except PackageAltered as err:
        current = ""
        state["digest"], state["problem"] = "", err.problem
    try:
        attested = verify_attestation(folder, issuer_keys)
        state["attested_digest"] = attested.package_digest
        state["attested_commit"] = attested.commit
        state["attestation"] = "verified"
    except AttestationInvalid as err:
        state["attested_digest"], state["attestation"] = "", err.problem
    state["changed_after_approval"] = bool(approved) and any(
        digest != current for digest in approved
    )
    state["changed_after_build"] = current != state["attested_digest"]
    return state


def _proof(audit: AuditLog, record: AuditRecord, signed: SignedCheckpoint) -> dict[str, Any]:
    size, root = signed.checkpoint.size, signed.checkpoint.root
    try:
        proof = audit.inclusion_proof(record.seq, size)
        verify_inclusion(record.seq, size, bytes.fromhex(record.leaf_hash), proof.hashes, root)
    except (AuditError, ValueError) as err:
        return {"index": record.seq, "verified": False, "problem": str(err)}
    return {"index": record.seq, **proof.as_dict(), "verified": True}


def render_explanation(console: Console, explanation: dict[str, Any]) -> None:
    """Print an explanation for a human reader."""
    for line in _who(explanation):
        console.print(line, highlight=False)
    proofs = {proof["index"]: proof for proof in explanation["proofs"]}
    steps = Table("index", "event", "actor", "summary", "in signed log", title="steps")
    for step in explanation["steps"]:
        proven = proofs.get(step["index"], {}).get("verified")
        steps.add_row(
            str(step["index"]),
            shown(step["name"]),
            shown(step["actor"]),
            shown(step["summary"][:90]),
            "proved" if proven else "NOT PROVED",
        )
    console.print(steps)
    for line in _outcome(explanation):
        console.print(line, highlight=False)


def _package_line(package: dict[str, Any]) -> str:
    now = package["digest"] or f"ALTERED ({package['problem']})"
    if package["changed_after_approval"]:
        verdict = "PACKAGE CHANGED AFTER APPROVAL: it no longer hashes to the approved digest"
    elif package["changed_after_build"]:
        verdict = f"PACKAGE CHANGED AFTER IT WAS BUILT (attestation: {package['attestation']})"
    else:
        verdict = "as the issuer attested" + (
            ", as approved" if package["approved_digests"] else ""
        )
    return f"package:    {package['directory']}: {now}: {verdict}"


def _who(explanation: dict[str, Any]) -> list[str]:
    run, agent, issuer = explanation["run"], explanation["agent"], explanation["issuer"]
    lines = [
        f"[bold]run {shown(run['id'])}[/]  {run['kind']}  {run['state']}  {shown(run['reason'])}",
        shown(
            f"agent:      {agent['id']} ({agent.get('display_name', '')}), {agent['status']}, "
            f"owner {agent.get('owner', '?')}, issued by {agent.get('issuer', '?')}"
        ),
        shown(f"issuer:     {issuer['name']} (keys {', '.join(issuer['keys'])})"),
        shown(f"sponsor:    {explanation['sponsor']}"),
    ]
    token = explanation["delegation"]
    if token:
        claims = token["claims"]
        revoked = f", REVOKED {token['revoked_at']}" if token["revoked_at"] else ""
        if not revoked and token.get("revoked_in_log"):
            revoked = f", REVOKED ({token['revoked_in_log']}; the database row says otherwise)"
        lines += [
            shown(
                f"delegation: jti {token['jti']}, signature {token['signature']}, sub "
                f"{claims.get('sub')}, act {claims.get('act')}, expires {token['expires_at']}"
                f"{revoked}"
            ),
            shown(f"            scope {claims.get('scope')}"),
        ]
    trigger = explanation["trigger"]
    if trigger:
        lines.append(
            shown(
                f"trigger:    {trigger['source']} {trigger['external_id']} by "
                f"{trigger['actor']}: {trigger['title']}"
            )
        )
        sender = f"{trigger.get('sender_kind')}:{trigger.get('sender')}"
        lines.append(
            shown(
                f"caused by:  {trigger.get('caused_by') or 'no known person (autonomous)'}"
                + (f" (sender {sender})" if trigger.get("sender") else "")
            )
        )
    for decision in explanation["decisions"]:
        verdict = "allowed" if decision["allowed"] else "denied"
        policies = ", ".join(decision["policy_ids"]) or "default"
        lines.append(
            shown(
                f"decision:   {decision['stage']} {decision['action']} {verdict} ({policies}): "
                + "; ".join(decision["reasons"])
            )
        )
    return lines


def _outcome(explanation: dict[str, Any]) -> list[str]:
    lines = []
    commit = explanation["commit"]
    if commit:
        describe = commit["signature"]["describe"]
        lines.append(shown(f"commit:     {commit['sha']} on {commit['branch']}: {describe}"))
    provenance = explanation["provenance"]
    if provenance:
        state = "verified" if provenance["verified"] else provenance["problem"]
        lines.append(shown(f"provenance: {provenance['path']}: {state}"))
    package = explanation.get("package")
    if package:
        lines.append(shown(_package_line(package)))
    for review in explanation["approvals"]:
        verdict = "approved" if review["approved"] else "rejected"
        signed = (
            f", signed with {review['key_fingerprint']}, statement {review['statement_digest']}"
            f" ({review['statement']})"
            if review.get("statement_digest")
            else ", NOT SIGNED"
        )
        forge = review.get("forge") or {}
        if forge and not review.get("statement_digest"):
            signed = (
                f", given on {forge['forge']} request #{forge['request']} (review "
                f"{forge['review_id']}): no signed statement"
            )
        if review.get("statement_digest"):
            problem = review.get("problem") or "unknown"
            signed += ", verified" if review.get("verified") else f", NOT VERIFIED: {problem}"
        lines.append(
            shown(
                f"review:     {verdict} by {review['reviewer']} at {review['at']} "
                f"(commit {review['commit'][:12]}){signed}"
            )
        )
    proofs = {proof["index"]: proof.get("verified") for proof in explanation["proofs"]}
    for item, line in track_items(explanation.get("regulated_track") or {}):
        if "verified" in item:
            line += ", verified" if item["verified"] else f", NOT VERIFIED: {item['problem']}"
        proven = "" if proofs.get(item["index"]) else " (NOT PROVED in the signed log)"
        lines.append(shown(f"{line} [event {item['index']}]{proven}"))
    checkpoint = explanation["checkpoint"]
    lines.append(
        shown(
            f"checkpoint: size {checkpoint['size']}, root {checkpoint['root_hash']}, "
            f"key {checkpoint['verifier_key']}"
        )
    )
    return lines
