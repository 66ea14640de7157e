"""Typed audit events: one frozen dataclass per kind of fact, and the decoder of stored ones.

The base class (`domain.AuditEvent`) holds the envelope (`actor`, `run_id`, `at`); a kind's
`NAME` is the leaf's name and its fields the leaf's data. `AuditLog.append(event)` is the one
way in; readers decode a stored record with `typed(record)` and match on the classes.
"""

from __future__ import annotations

from codefactory.audit.events.engines import (
    ContextRead,
    ContextReadFailed,
    EgressAttempted,
    EngineSpend,
    ModelCalled,
    ToolCalled,
)
from codefactory.audit.events.registry import KINDS, typed
from codefactory.audit.events.review import (
    ChangeRequestFailed,
    ChangeRequestFiled,
    ForgeApprovalRecorded,
    ForgeApprovalRefused,
    ReviewRefused,
    ReviewSigned,
)
from codefactory.audit.events.runs import (
    AgentRefused,
    CheckCompleted,
    CommitCreated,
    CommitRequested,
    ContextGathered,
    EngineProposed,
    EngineRefused,
    EngineWithoutModel,
    FindingWaived,
    NoChangeNeeded,
    PackageBuilt,
    PackageSetAside,
    PolicyDecided,
    ReviewRecorded,
    RunCreated,
    RunStateChanged,
    RunTakenOver,
    ScopeChecked,
    SetupRerun,
    TriggerReceived,
)
from codefactory.domain import AuditEvent, UnknownEvent

__all__ = [
    "KINDS",
    "AgentRefused",
    "AuditEvent",
    "ChangeRequestFailed",
    "ChangeRequestFiled",
    "CheckCompleted",
    "CommitCreated",
    "CommitRequested",
    "ContextGathered",
    "ContextRead",
    "ContextReadFailed",
    "EgressAttempted",
    "EngineProposed",
    "EngineRefused",
    "EngineSpend",
    "EngineWithoutModel",
    "FindingWaived",
    "ForgeApprovalRecorded",
    "ForgeApprovalRefused",
    "ModelCalled",
    "NoChangeNeeded",
    "PackageBuilt",
    "PackageSetAside",
    "PolicyDecided",
    "ReviewRecorded",
    "ReviewRefused",
    "ReviewSigned",
    "RunCreated",
    "RunStateChanged",
    "RunTakenOver",
    "ScopeChecked",
    "SetupRerun",
    "ToolCalled",
    "TriggerReceived",
    "UnknownEvent",
    "typed",
]
