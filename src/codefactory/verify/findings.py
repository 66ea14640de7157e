"""Facts about findings every check shares: fingerprints, severity order, "could not judge".

A fingerprint names a finding independently of where the change moved it: the rule, the
file and the text of the flagged line (whitespace collapsed), so the same `eval(x)` found
at the base commit and after the change is recognised as one finding (SARIF
`partialFingerprints`; the gate matches them as a multiset, so a second copy is new).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import replace

from codefactory.domain import Change, Finding, Severity

FINGERPRINT_KEY = "codefactory/v1"
"""The `partialFingerprints` key the SARIF evidence uses."""
SEVERITY_ORDER = (Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL)
# Inline suppressions (nosec, noqa, pragma allowlist): adding one must not make a finding "new".
INLINE_SUPPRESSION = re.compile(r"#\s*(?:nosec|noqa|pragma:\s*allowlist)", re.IGNORECASE)
CANNOT_JUDGE = frozenset(
    {"check-crashed", "no-tests", "tests-timed-out", "sca-unparseable", "sast-file-unscanned"}
)


def cannot_judge(rule: str) -> bool:
    """Whether a finding says the check could not judge the change: it always blocks.

    Such findings are never matched against the base (a suite that hung before still
    proves nothing now), never below a threshold, and only a waiver naming the rule lifts them.
    """
    return rule in CANNOT_JUDGE or rule.endswith("-could-not-run")


def at_least(severity: Severity, threshold: Severity) -> bool:
    return SEVERITY_ORDER.index(severity) >= SEVERITY_ORDER.index(threshold)


def digest(*parts: str) -> str:
    """A short, stable digest of text parts (for fingerprints and cache keys)."""
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part.encode("utf-8", "surrogatepass"))
        hasher.update(b"\0")
    return hasher.hexdigest()[:32]


def line_text(content: bytes | None, line: int) -> str:
    """The flagged line, whitespace collapsed; empty when unknown."""
    if content is None or line <= 0:
        return ""
    lines = content.splitlines()
    if line > len(lines):
        return ""
    text = INLINE_SUPPRESSION.split(lines[line - 1].decode("utf-8", "replace"), maxsplit=1)[0]
    return " ".join(text.split())


def line_fingerprint(check: str, rule: str, path: str, content: bytes | None, line: int) -> str:
    return digest(check, rule, path, line_text(content, line))


def content_of(change: Change, path: str) -> bytes | None:
    return next((f.content for f in change.files if f.path == path), None)


def fingerprinted(findings: Sequence[Finding], change: Change) -> list[Finding]:
    """Findings with a fingerprint: their own, else rule + path + the flagged line's text."""
    return [
        f
        if f.fingerprint
        else replace(
            f,
            fingerprint=line_fingerprint(
                f.check, f.rule, f.path, content_of(change, f.path), f.line
            )
            if f.path and f.line
            else digest(f.check, f.rule, f.path, f.message),
        )
        for f in findings
    ]
