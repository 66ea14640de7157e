"""Witnessed checkpoints: every checkpoint the log signs goes to the configured witnesses.

`WitnessedAuditLog` wraps the audit log (as `AuditedSandbox` wraps the sandbox). Its
`checkpoint()` signs as before, then asks each witness (c2sp.org/tlog-witness) to cosign,
sending a consistency proof from the size that witness last cosigned (on a 409, once more from
the size it names). A cosignature is verified with the witness's configured key before it is
kept. A witness that is down, slow, refuses, or answers with an invalid cosignature is a
`witness-failed` audit event and never an exception: the checkpoint stays unwitnessed until a
later one is cosigned. `verify()` adds the witnesses' evidence (`witness_check.py`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

from codefactory.audit.checkpoint import Checkpoint
from codefactory.audit.cosignature import verify_cosignature
from codefactory.audit.errors import AuditError, CheckpointInvalid
from codefactory.audit.events import WitnessFailed
from codefactory.audit.port import (
    AuditLog,
    ForwardingAuditLog,
    LogReport,
    SignedCheckpoint,
)
from codefactory.audit.settings import AuditSettings, WitnessSettings
from codefactory.audit.sql import SqlAuditLog
from codefactory.audit.sql_cosignatures import SqlCosignatures
from codefactory.audit.witness_check import (
    UNWITNESSED,
    WitnessEvidence,
    gather,
    quorum_problem,
    unwitnessed_tail,
)
from codefactory.audit.witness_client import (
    WitnessAnswer,
    WitnessConflict,
    WitnessCosigned,
    WitnessRefused,
    add_checkpoint,
)

FAILED_EVENT = WitnessFailed.NAME
log = logging.getLogger(__name__)
Status = Callable[[], dict[str, Any] | None]


class WitnessedAuditLog(ForwardingAuditLog):
    """An `AuditLog` whose checkpoints are cosigned by witnesses and whose verification
    requires their cosignatures.

    `log` receives appends and reads (it may itself be a wrapper, e.g. the SIEM stream);
    `sql` is the store-backed log underneath, for proofs and verification; `siem_status`
    adds the SIEM stream's state to reports.
    """

    def __init__(
        self,
        log: AuditLog,
        *,
        sql: SqlAuditLog,
        cosignatures: SqlCosignatures,
        settings: AuditSettings,
        siem_status: Status = lambda: None,
    ) -> None:
        super().__init__(log)
        self._sql = sql
        self._cosignatures = cosignatures
        self._settings = settings
        self._siem_status = siem_status

    # -- witnessing -------------------------------------------------------------------------

    def checkpoint(self) -> SignedCheckpoint:
        """Sign (or reuse) the latest checkpoint, then have every witness that has not
        cosigned it yet cosign it; failures become audit events."""
        signed = self._log.checkpoint()
        for witness in self._settings.witnesses:
            try:
                self._witness(witness, signed)
            except Exception:  # a witness never blocks a run; verify names what is missing
                log.exception("witness %s: the checkpoint could not be witnessed", witness.name)
        return signed

    def _witness(self, witness: WitnessSettings, signed: SignedCheckpoint) -> None:
        key = witness.key
        encoded = key.encoded()
        checkpoint = signed.checkpoint
        if self._cosignatures.has(encoded, checkpoint):
            return
        old = self._cosignatures.last_size(encoded)
        answer: WitnessAnswer = WitnessRefused("refused", "not asked")
        for _attempt in range(2):
            if old > checkpoint.size:
                self._failed(
                    witness,
                    checkpoint,
                    "inconsistent",
                    f"the witness cosigned a checkpoint of size {old}, larger than the log's "
                    f"{checkpoint.size}: events or checkpoints were removed from the store",
                )
                return
            try:
                proof = self._proof(old, checkpoint.size)
            except AuditError as error:
                self._failed(witness, checkpoint, "inconsistent", f"no proof from {old}: {error}")
                return
            answer = add_checkpoint(
                witness.url,
                old=old,
                proof=proof,
                note=signed.note,
                timeout_s=self._settings.witness_timeout_s,
            )
            if not isinstance(answer, WitnessConflict):
                break
            if answer.size < old:  # it forgot what it cosigned for us: visible, then re-start
                self._failed(
                    witness,
                    checkpoint,
                    "reset",
                    f"the witness holds size {answer.size}, less than the {old} it cosigned "
                    "for this log: its state was lost or replaced",
                    409,
                )
            old = answer.size
        if isinstance(answer, WitnessConflict):
            self._failed(
                witness,
                checkpoint,
                "inconsistent",
                f"the witness still answers 409 (its size {answer.size}): the log does not "
                "extend what it cosigned",
                409,
            )
        elif isinstance(answer, WitnessRefused):
            self._failed(witness, checkpoint, answer.kind, answer.reason, answer.status)
        else:
            self._keep(witness, signed, answer)

    def _proof(self, old: int, size: int) -> tuple[bytes, ...]:
        if old == 0 or old == size:
            return ()
        return self._sql.consistency_proof(old, size).hashes

    def _keep(
        self, witness: WitnessSettings, signed: SignedCheckpoint, answer: WitnessCosigned
    ) -> None:
        note_text = signed.note[: signed.note.rfind("\n\n") + 1]
        errors: list[str] = []
        for line in answer.lines:
            try:
                cosignature = verify_cosignature(note_text, line, witness.key)
            except CheckpointInvalid as error:
                if error.kind != "unknown-key":
                    errors.append(str(error))
                continue
            self._cosignatures.add(
                witness_key=witness.key.encoded(),
                checkpoint=signed.checkpoint,
                note=signed.note,
                line=cosignature.line,
                timestamp=cosignature.timestamp,
            )
            return
        reason = errors[0] if errors else "no line of the answer is by its configured key"
        self._failed(witness, signed.checkpoint, "bad-cosignature", reason, 200)

    def _failed(
        self,
        witness: WitnessSettings,
        checkpoint: Checkpoint,
        kind: str,
        reason: str,
        status: int = 0,
    ) -> None:
        self._log.append(
            WitnessFailed(
                actor="audit",
                witness=witness.name,
                url=witness.url,
                size=checkpoint.size,
                root_hash=checkpoint.root.hex(),
                kind=kind,
                status=status,
                reason=reason[:500],
            )
        )

    def cosigned_note(self, signed: SignedCheckpoint) -> str:
        """The signed note followed by each configured witness's verified cosignature line
        of this checkpoint (c2sp.org/tlog-cosignature: a note with more signature lines)."""
        note_text = signed.note[: signed.note.rfind("\n\n") + 1]
        lines: list[str] = []
        for witness in self._settings.witnesses:
            for row in self._cosignatures.all():
                if row.witness_key != witness.key.encoded() or row.note != signed.note:
                    continue
                try:
                    lines.append(verify_cosignature(note_text, row.cosignature, witness.key).line)
                except CheckpointInvalid:
                    continue
                break
        return signed.note + "".join(lines)

    # -- verification -----------------------------------------------------------------------

    def verify(self, *, checkpoint: str | None = None, offline: bool = False) -> LogReport:
        """The log's own verification, with every witness's cosignatures as further
        checkpoints, and the quorum required on the latest checkpoint; unless `offline`,
        the quorum of witnesses must confirm they cosigned nothing later (a rollback)."""
        witnesses = self._settings.witnesses
        siem = self._siem_status()
        warnings = _siem_warnings(siem)
        if not witnesses:
            report = self._sql.verify(checkpoint=checkpoint)
            return dataclasses.replace(
                report, witnessed=False, warnings=(UNWITNESSED, *warnings), siem=siem
            )
        evidence = gather(
            self._cosignatures.all(),
            witnesses,
            origin=self._sql.origin,
            log_verifiers=self._sql.verifiers(),
        )
        report = self._sql.verify(checkpoint=checkpoint, witnessed=evidence.trusted)
        signed = self._sql.signed_checkpoints()
        problem, status = quorum_problem(
            evidence,
            witnesses,
            self._settings.quorum,
            signed[-1] if signed else None,
            report.count,
        )
        tail = unwitnessed_tail(evidence, self._settings.quorum, report.count)
        report = dataclasses.replace(
            report,
            witnessed=True,
            witnesses=status,
            warnings=(*warnings, *([tail] if tail else [])),
            siem=siem,
        )
        if not report.ok:
            return report
        reason = evidence.problems[0] if evidence.problems else problem
        if reason is not None:
            return dataclasses.replace(report, ok=False, reason=reason)
        cosigned = sum(1 for s in status.values() if s["cosigned_latest"])
        reason = (
            f"{report.reason}; the latest checkpoint is cosigned by {cosigned} of "
            f"{len(witnesses)} witnesses (quorum {self._settings.quorum})"
        )
        if offline:
            return dataclasses.replace(report, reason=f"{reason}; witnesses not asked (offline)")
        problem = self._fresh(evidence, status)
        if problem is not None:
            return dataclasses.replace(report, ok=False, reason=problem)
        return dataclasses.replace(
            report, reason=f"{reason}; the witnesses hold no later checkpoint of this log"
        )

    def _fresh(self, evidence: WitnessEvidence, status: dict[str, dict[str, Any]]) -> str | None:
        """Ask each witness whether it cosigned a checkpoint later than the latest one kept
        here (re-submitting that one: 200 means no, 409 names its size). A later one means
        checkpoints and events were removed from the store. Needs the quorum's answers."""
        confirmed, problems = 0, []
        for witness in self._settings.witnesses:
            size, note = evidence.latest.get(witness.name, (0, ""))
            if not note:
                status[witness.name]["fresh"] = False
                continue
            answer = add_checkpoint(
                witness.url, old=size, proof=(), note=note,
                timeout_s=self._settings.witness_timeout_s,
            )  # fmt: skip
            status[witness.name]["fresh"] = isinstance(answer, WitnessCosigned)
            if isinstance(answer, WitnessCosigned):
                confirmed += 1
            elif isinstance(answer, WitnessConflict) and answer.size > size:
                return (
                    f"witness {witness.name} cosigned a checkpoint of size {answer.size}, but "
                    f"the latest one kept here is of size {size}: later checkpoints and their "
                    "events were removed from the store (rolled back)"
                )
            elif isinstance(answer, WitnessConflict):
                problems.append(f"{witness.name} holds size {answer.size} only (reset?)")
            else:
                problems.append(f"{witness.name}: {answer.reason}")
        if confirmed >= self._settings.quorum:
            return None
        return (
            f"only {confirmed} of the {self._settings.quorum} witnesses required confirmed "
            f"that no later checkpoint exists ({'; '.join(problems) or 'none asked'}); "
            "`audit verify --offline` checks the stored evidence alone"
        )


def _siem_warnings(siem: dict[str, Any] | None) -> Sequence[str]:
    if siem and siem.get("dropped"):
        return (
            f"{siem['dropped']} audit events were not delivered to the SIEM ({siem['target']})",
        )
    return ()
