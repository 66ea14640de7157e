"""Verification errors.

VerifyError
 └── JunitUnparseable   a JUnit XML report is not well-formed or not JUnit at all

A check never raises these to the gate for a normal failure: a check that could not run
returns a failed `CheckResult`. These errors are for the parsers the checks use.
"""

from __future__ import annotations


class VerifyError(Exception):
    """Base class for every verification failure."""


class JunitUnparseable(VerifyError):
    """A JUnit XML report could not be read; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the JUnit XML report could not be parsed: {reason}")
        self.reason = reason
