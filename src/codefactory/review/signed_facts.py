"""What an approval binds to, read from signatures the data folder cannot forge, not from rows.

An insider who can write the data folder can edit `factory.db` (`runs.head_commit`,
`runs.sponsor`, `trigger_details.caused_by`), move the forge branch and rewrite the package
and its manifest; they cannot sign with the issuer's or an agent's key (an HSM behind the
`Signer` port, pinned in `identity.trust_file`). So before a verdict is taken, and again
before the hand-off, `SignedFacts.establish` derives each fact from a signature, re-verified:

- the package: every file matches `manifest.json` (re-hashed, nothing added), and the
  manifest's digest is the one the issuer attested (`attestation.dsse.json`, pinned issuer
  key) for this run;
- the commit: the one the issuer attested and the agent's provenance (`provenance.dsse.json`,
  the agent's pinned key) names; git says the commit is signed by the agent's pinned key
  (`allowed_signers` of pinned keys, the key's fingerprint compared); its message carries
  this run's `Run-Id` trailer; the branch points at it; `runs.head_commit` equals it;
- the parties: the sponsor is the verified delegation token's `sub`, the person who caused
  the trigger its `codefactory:caused_by` claim and the requester its
  `codefactory:requested_by`; rows that say otherwise are refused, naming the disagreement.

Each failure is `FactsRefused` with one precise reason; the caller audits it.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from codefactory.domain import Run, TriggerEvent
from codefactory.identity.errors import IdentityError
from codefactory.identity.names import same_identity
from codefactory.identity.port import CAUSED_BY_CLAIM, REQUESTED_BY_CLAIM, IssuerKey
from codefactory.identity.ssh_signatures import key_fingerprint
from codefactory.package.attestation import AttestationInvalid, Attested, verify_attestation
from codefactory.package.manifest import PackageAltered, package_digest
from codefactory.package.provenance import ProvenanceInvalid, verify_provenance
from codefactory.review.errors import FactsRefused, ForgeError
from codefactory.review.signing import CommitSignature

RUN_ID_TRAILER = "Run-Id"


class CommitReader(Protocol):
    """What the facts need of the forge (`LocalForge` has it)."""

    def verify_commit(
        self, repository: str, commit: str, allowed_signers: Path
    ) -> CommitSignature: ...

    def commit_message(self, repository: str, commit: str) -> str: ...

    def branch_head(self, repository: str, branch: str) -> str | None: ...


class TokenClaims(Protocol):
    """The run's delegation token, signature verified (`DelegationAuthority`)."""

    def verified_claims(self, run: Run) -> dict[str, Any]: ...


@dataclass(frozen=True, kw_only=True)
class ReviewFacts:
    """The facts a verdict binds to, each from a verified signature."""

    commit: str
    """The commit the agent signed and the issuer attested (40 hex)."""
    package_digest: str
    """`sha256:<hex>` of `manifest.json`, as the issuer attested it."""
    attestation_digest: str
    sponsor: str
    """The delegation token's `sub`."""
    caused_by: str
    """The token's `codefactory:caused_by` (`user:<id>` or empty: autonomous)."""
    requested_by: str
    """The token's `codefactory:requested_by` (the trigger's actor)."""


class SignedFacts:
    """Derives `ReviewFacts` from signatures, checked against the pinned keys."""

    def __init__(
        self,
        *,
        forge: CommitReader,
        tokens: TokenClaims,
        issuer_keys: Callable[[], Sequence[IssuerKey]],
        agent_key: Callable[[str], str],
        allowed_signers: Callable[[], str],
    ) -> None:
        """`issuer_keys`: the issuer's pinned public keys; `agent_key(agent id)`: the agent's
        pinned `ssh-ed25519` line (empty: none); `allowed_signers()`: git's allowed-signers
        text of the pinned agent keys."""
        self.forge = forge
        self.tokens = tokens
        self.issuer_keys = issuer_keys
        self.agent_key = agent_key
        self.allowed_signers = allowed_signers

    def establish(self, run: Run, trigger: TriggerEvent | None) -> ReviewFacts:
        """The run's facts; `FactsRefused` naming the first that does not hold."""
        attested = self.attested(run)
        folder = Path(run.package_dir)
        try:
            digest = package_digest(folder)
            provenance = verify_provenance(folder, self.agent_key(run.agent_id))
        except (PackageAltered, ProvenanceInvalid) as err:
            raise FactsRefused(run.id, str(err)) from err
        if attested.package_digest != digest:
            raise FactsRefused(
                run.id,
                f"the package's manifest hashes to {digest}, but the issuer attested "
                f"{attested.package_digest}: the package was rewritten after it was built",
            )
        if provenance.run_id != run.id or provenance.commit != attested.commit:
            raise FactsRefused(
                run.id,
                f"the agent's provenance names run {provenance.run_id} at commit "
                f"{provenance.commit}, the issuer attested {attested.commit}",
            )
        patch = hashlib.sha256((folder / "change.patch").read_bytes()).hexdigest()
        if patch != provenance.patch_sha256:
            raise FactsRefused(run.id, "change.patch is not the patch the agent signed")
        commit = attested.commit
        self._check_commit(run, commit)
        return ReviewFacts(
            commit=commit,
            package_digest=digest,
            attestation_digest=attested.digest,
            **self._parties(run, trigger),
        )

    def attested(self, run: Run) -> Attested:
        """What the issuer attested of `run`'s package (its manifest's digest, its commit),
        the signature verified with the pinned issuer keys; `FactsRefused` when the run has no
        package, the attestation does not verify or is for another run. Only the attestation
        is read: check the manifest and the files against it (`package.manifest`)."""
        if not run.package_dir:
            raise FactsRefused(run.id, "it has no change package")
        try:
            attested = verify_attestation(Path(run.package_dir), self.issuer_keys())
        except AttestationInvalid as err:
            raise FactsRefused(run.id, str(err)) from err
        if attested.run_id != run.id:
            raise FactsRefused(run.id, f"the package attestation is for run {attested.run_id}")
        return attested

    def _check_commit(self, run: Run, commit: str) -> None:
        if run.head_commit != commit:
            raise FactsRefused(
                run.id,
                f"runs.head_commit {run.head_commit} is not the commit the agent signed and the "
                f"issuer attested ({commit})",
            )
        pinned = self.agent_key(run.agent_id)
        try:
            with tempfile.TemporaryDirectory() as scratch:
                signers = Path(scratch) / "allowed_signers"
                signers.write_text(self.allowed_signers())
                signature = self.forge.verify_commit(run.repository, commit, signers)
            message = self.forge.commit_message(run.repository, commit)
            head = self.forge.branch_head(run.repository, run.branch)
            expected = key_fingerprint(pinned) if pinned else ""
        except (ForgeError, ValueError) as err:
            raise FactsRefused(run.id, f"commit {commit} could not be checked: {err}") from err
        if not signature.good or not expected or signature.fingerprint != expected:
            raise FactsRefused(
                run.id,
                f"commit {commit} is not signed by {run.agent_id}'s pinned key "
                f"({expected or 'none pinned'}): git says {signature.describe()}",
            )
        trailers = _trailers(message, RUN_ID_TRAILER)
        if trailers != [run.id]:
            raise FactsRefused(
                run.id, f"commit {commit} carries Run-Id {trailers or 'none'}, not [{run.id!r}]"
            )
        if head != commit:
            raise FactsRefused(
                run.id,
                f"branch {run.branch} points at {head}, not at the signed commit {commit}: "
                "an approval binds to the reviewed commit",
            )

    def _parties(self, run: Run, trigger: TriggerEvent | None) -> dict[str, str]:
        try:
            claims = self.tokens.verified_claims(run)
        except IdentityError as err:
            raise FactsRefused(run.id, str(err)) from err
        if CAUSED_BY_CLAIM not in claims or REQUESTED_BY_CLAIM not in claims:
            raise FactsRefused(
                run.id,
                f"its delegation token carries no {CAUSED_BY_CLAIM} and {REQUESTED_BY_CLAIM} "
                "claims (issued before they were signed): re-run the trigger",
            )
        actor = claims.get("act")
        agent = actor.get("sub") if isinstance(actor, dict) else None
        if agent != run.agent_id:
            raise FactsRefused(
                run.id,
                f"runs.agent_id says {run.agent_id!r} but the signed delegation token's act.sub "
                f"says {agent!r}: the database disagrees with what the issuer signed",
            )
        sponsor = str(claims.get("sub", ""))
        caused_by = str(claims[CAUSED_BY_CLAIM])
        requested_by = str(claims[REQUESTED_BY_CLAIM])
        rows = (
            ("runs.sponsor", run.sponsor, "sub", sponsor),
            ("trigger_details.caused_by", trigger.caused_by if trigger else "", CAUSED_BY_CLAIM,
             caused_by),
            ("triggers.actor", trigger.actor if trigger else "", REQUESTED_BY_CLAIM, requested_by),
        )  # fmt: skip
        for row, recorded, claim, signed in rows:
            if recorded != signed and not same_identity(recorded, signed):
                raise FactsRefused(
                    run.id,
                    f"{row} says {recorded!r} but the signed delegation token's {claim} says "
                    f"{signed!r}: the database disagrees with what the issuer signed",
                )
        return {"sponsor": sponsor, "caused_by": caused_by, "requested_by": requested_by}


def _trailers(message: str, key: str) -> list[str]:
    """The values of `key:` trailers in the message's last paragraph (git's trailer block)."""
    paragraphs = [p for p in message.strip().split("\n\n") if p.strip()]
    if len(paragraphs) < 2:
        return []
    prefix = key.lower() + ":"
    return [
        line.split(":", 1)[1].strip()
        for line in paragraphs[-1].splitlines()
        if line.lower().startswith(prefix)
    ]
