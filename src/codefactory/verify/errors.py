"""Verification errors.

VerifyError
 ├── JunitUnparseable     a JUnit XML report is not well-formed or not JUnit at all
 ├── BaseUnreadable       the base versions of the changed files could not be read
 ├── TestMapInvalid       a recorded test map is missing, malformed or too large
 ├── ToolOutputInvalid    a scanner's output is not the format it promises
 └── WorktreeUnreadable   `codefactory verify` could not list a working tree's changes

A check never raises these to the gate for a normal failure: a check that could not run
returns a failed `CheckResult`. These errors are for the parsers and helpers the checks use.
"""

from __future__ import annotations


class VerifyError(Exception):
    """Base class for every verification failure."""


class JunitUnparseable(VerifyError):
    """A JUnit XML report could not be read; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the JUnit XML report could not be parsed: {reason}")
        self.reason = reason


class BaseUnreadable(VerifyError):
    """The base commit's versions of the changed files could not be read from the sandbox."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the base versions of the changed files could not be read: {reason}")
        self.reason = reason


class TestMapInvalid(VerifyError):
    """The map of tests to code could not be recorded or read; selection falls back."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, reason: str) -> None:
        super().__init__(f"the test map is unusable: {reason}")
        self.reason = reason


class ToolOutputInvalid(VerifyError):
    """A scanner ran but its output is not what it promises (`tool`, `reason`)."""

    def __init__(self, tool: str, reason: str) -> None:
        super().__init__(f"{tool}: {reason}")
        self.tool = tool
        self.reason = reason


class WorktreeUnreadable(VerifyError):
    """git could not list the working tree's changes against the base revision."""

    def __init__(self, repo: str, reason: str) -> None:
        super().__init__(f"cannot read the changes of {repo}: {reason}")
        self.repo = repo
        self.reason = reason
