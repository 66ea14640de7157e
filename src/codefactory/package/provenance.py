"""`provenance.dsse.json`: what made the change, signed by the agent that made it.

An in-toto Statement v1 whose subjects are the commit (`gitCommit`) and the patch
(`sha256`), with a SLSA provenance v1 predicate naming the trigger, the engine and its
version, the policy decisions, the base commit and the checks run, in a DSSE envelope signed
with the agent's own Ed25519 key (its public key is in the factory's JWKS). The reference
implementations (`securesystemslib`, `in-toto`) verify it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from codefactory.domain import CheckResult
from codefactory.package.dsse import pae, seal
from codefactory.package.port import PackageContents

FILE_NAME = "provenance.dsse.json"
PAYLOAD_TYPE = "application/vnd.in-toto+json"  # ASCII: DSSE lengths count bytes
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://codefactory.invalid/buildtypes/governed-change/v1"

AgentSigner = Callable[[str, bytes], tuple[str, bytes]]
"""Signs bytes with an agent's key: `(agent id, message) → (key id, signature)`."""
RunFacts = Callable[[str], dict[str, Any]]
"""Facts the store holds about a run (policy decisions, delegation) for the predicate."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check(result: CheckResult) -> dict[str, Any]:
    return {
        "check": result.check,
        "passed": result.passed,
        "summary": result.summary,
        "findings": len(result.findings),
        "blocking": sum(1 for f in result.findings if f.blocking),
    }


def statement(
    contents: PackageContents, *, patch: bytes, builder_id: str, facts: dict[str, Any]
) -> dict[str, Any]:
    """The in-toto Statement v1 with its SLSA provenance v1 predicate."""
    run, trigger, proposal = contents.run, contents.trigger, contents.proposal
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {
                "name": contents.branch,
                "uri": f"git+file://{contents.forge_repository}",
                "digest": {"gitCommit": contents.commit},
            },
            {"name": "change.patch", "digest": {"sha256": _sha256(patch)}},
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "trigger": {
                        "source": trigger.source,
                        "externalId": trigger.external_id,
                        "actor": trigger.actor,
                        "title": trigger.title,
                        "kind": trigger.kind.value,
                        "payloadDigest": trigger.payload_digest,
                        "receivedAt": trigger.received_at.isoformat(),
                    },
                    "repository": run.repository,
                    "sponsor": run.sponsor,
                },
                "internalParameters": {
                    "agent": run.agent_id,
                    "engine": {"name": proposal.engine, "version": proposal.engine_version},
                    "rounds": contents.rounds,
                    "checks": [_check(result) for result in contents.results],
                    **facts,
                },
                "resolvedDependencies": [
                    {
                        "name": "base",
                        "uri": f"git+file://{run.repository_path or run.repository}",
                        "digest": {"gitCommit": run.base_commit},
                    }
                ],
            },
            "runDetails": {
                "builder": {"id": builder_id},
                "metadata": {
                    "invocationId": run.id,
                    "startedOn": run.created_at.isoformat(),
                    "finishedOn": datetime.now(UTC).isoformat(),
                },
                "byproducts": [
                    {
                        "name": f"evidence/{result.evidence_name}",
                        "digest": {"sha256": _sha256(result.evidence.encode("utf-8"))},
                    }
                    for result in contents.results
                    if result.evidence_name
                ],
            },
        },
    }


def envelope(payload: dict[str, Any], sign: Callable[[bytes], tuple[str, bytes]]) -> dict[str, Any]:
    """A DSSE envelope of the JSON `payload`, signed over its PAE."""
    body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return seal(PAYLOAD_TYPE, body, sign)


class DsseProvenance:
    """Writes `provenance.dsse.json` into a package folder, signed by the run's agent."""

    def __init__(self, *, sign: AgentSigner, facts: RunFacts, builder_id: str) -> None:
        self._sign = sign
        self._facts = facts
        self.builder_id = builder_id

    def write(self, folder: Path, contents: PackageContents, patch: bytes) -> None:
        """Sign and write the envelope; the patch bytes are those of `change.patch`."""
        run = contents.run
        document = statement(
            contents, patch=patch, builder_id=self.builder_id, facts=self._facts(run.id)
        )
        signed = envelope(document, lambda message: self._sign(run.agent_id, message))
        text = json.dumps(signed, indent=2, sort_keys=True) + "\n"
        (folder / FILE_NAME).write_text(text, encoding="utf-8")


class ProvenanceInvalid(Exception):
    """`provenance.dsse.json` is missing, unreadable, or not signed by the agent's key."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"the provenance {path} does not hold: {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True, kw_only=True)
class VerifiedProvenance:
    """What the agent signed: the run, its commit and the patch's SHA-256 (hex)."""

    run_id: str
    commit: str
    patch_sha256: str
    subject: list[dict[str, Any]]


def verify_provenance(folder: Path, ssh_public_key: str) -> VerifiedProvenance:
    """The provenance in `folder`, its DSSE signature checked with the agent's `ssh-ed25519`
    public key line (its pinned key when a trust file is set); `ProvenanceInvalid` says why
    not (an empty key: the agent has no key to trust)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    path = folder / FILE_NAME
    if not ssh_public_key:
        raise ProvenanceInvalid(path, "the agent has no trusted (pinned) key")
    try:
        envelope = json.loads(path.read_text(encoding="utf-8"))
        payload = base64.b64decode(envelope["payload"])
        signature = base64.b64decode(envelope["signatures"][0]["sig"])
        key = serialization.load_ssh_public_key(ssh_public_key.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("the agent's key is not ssh-ed25519")
        key.verify(signature, pae(envelope["payloadType"], payload))
        document = json.loads(payload)
        subject = list(document["subject"])
        run_id = str(document["predicate"]["runDetails"]["metadata"]["invocationId"])
    except InvalidSignature:
        raise ProvenanceInvalid(path, "signature does not verify") from None
    except (OSError, ValueError, KeyError, IndexError, TypeError) as err:
        raise ProvenanceInvalid(path, f"unreadable: {err}") from None
    commits = [s["digest"]["gitCommit"] for s in subject if "gitCommit" in s.get("digest", {})]
    patches = [s["digest"]["sha256"] for s in subject if s.get("name") == "change.patch"]
    if len(commits) != 1 or len(patches) != 1:
        raise ProvenanceInvalid(path, "it does not name exactly one commit and one patch")
    return VerifiedProvenance(
        run_id=run_id, commit=str(commits[0]), patch_sha256=str(patches[0]), subject=subject
    )
