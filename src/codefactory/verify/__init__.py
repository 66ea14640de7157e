"""Feedback loop: checks that judge an engine's change inside the sandbox, and the gate."""

from __future__ import annotations

from typing import TYPE_CHECKING

from codefactory.lazy import lazy_exports

if TYPE_CHECKING:
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

__getattr__ = lazy_exports(
    __name__,
    globals(),
    {
        "JunitUnparseable": "codefactory.verify.errors",
        "VerifyError": "codefactory.verify.errors",
        "Gate": "codefactory.verify.gate",
        "passed": "codefactory.verify.gate",
        "Baseline": "codefactory.verify.port",
        "Check": "codefactory.verify.port",
        "ComparedCheck": "codefactory.verify.port",
        "Cost": "codefactory.verify.port",
    },
)
