"""Waivers: approved exceptions from policy, applied by the gate, each use an audit fact.

A waiver names a check and a rule (or `*`), optionally a path glob and one fingerprint, its
approver, its reason and when it lapses. A wildcard rule never lifts a "could not judge"
finding (a crashed scanner, a suite that hung): such a waiver must name the rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from codefactory.domain import CheckResult, Finding
from codefactory.verify.findings import cannot_judge
from codefactory.verify.scope import matches
from codefactory.verify.settings import Waiver

WAIVED_EVENT = "finding-waived"
"""The audit event name of one use of a waiver."""


@dataclass(frozen=True, kw_only=True)
class WaiverUse:
    """One finding a waiver kept from blocking."""

    waiver: Waiver
    finding: Finding

    @property
    def actor(self) -> str:
        return f"user:{self.waiver.approver}"

    def as_event(self) -> dict[str, Any]:
        """The audit event's data (besides the actor, who is the approver)."""
        f = self.finding
        return {
            "check": f.check,
            "rule": f.rule,
            "path": f.path,
            "line": f.line,
            "fingerprint": f.fingerprint,
            "severity": f.severity.value,
            "approver": self.waiver.approver,
            "reason": self.waiver.reason,
            "expires": self.waiver.expires.isoformat() if self.waiver.expires else None,
        }


def find_waiver(waivers: Sequence[Waiver], finding: Finding, today: date) -> Waiver | None:
    """The first waiver in force that covers `finding`."""
    return next((w for w in waivers if _covers(w, finding, today)), None)


def waive(finding: Finding, waiver: Waiver) -> Finding:
    return replace(
        finding,
        blocking=False,
        waived_by=waiver.approver,
        message=f"{finding.message} [waived by {waiver.approver}: {waiver.reason}]",
    )


def waiver_uses(
    waivers: Sequence[Waiver], results: Sequence[CheckResult], today: date
) -> list[WaiverUse]:
    """Every waived finding of `results` with the waiver that lifted it."""
    uses = []
    for result in results:
        for finding in result.findings:
            waiver = find_waiver(waivers, finding, today) if finding.waived_by else None
            if waiver is not None:
                uses.append(WaiverUse(waiver=waiver, finding=finding))
    return uses


def _covers(waiver: Waiver, finding: Finding, today: date) -> bool:
    if waiver.expires is not None and today > waiver.expires:
        return False
    if waiver.check not in ("*", finding.check):
        return False
    if waiver.rule != finding.rule and (waiver.rule != "*" or cannot_judge(finding.rule)):
        return False
    if waiver.fingerprint and waiver.fingerprint != finding.fingerprint:
        return False
    return waiver.path == "*" or matches(finding.path, waiver.path)
