"""Feedback loop: checks that judge an engine's change inside the sandbox, and the gate."""

from codefactory.verify.errors import JunitUnparseable, VerifyError
from codefactory.verify.gate import Gate, passed
from codefactory.verify.port import Baseline, Check, ComparedCheck, Cost

__all__ = [
    "Baseline",
    "Check",
    "ComparedCheck",
    "Cost",
    "Gate",
    "JunitUnparseable",
    "VerifyError",
    "passed",
]
