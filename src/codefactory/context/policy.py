"""Who may read which source: the engine registry's clearance first, then Cedar.

`RunReadPolicy` is the `ReadDecider` of one run: a source whose data class the engine is not
cleared for is refused without asking policy (refused, never truncated), then Cedar decides
`Action::"read-context"` (`policy/schema.md`). Authority comes only from here: nothing a
ticket, a page or a query says widens what a run may read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from codefactory.context.wrappers import ReadRequest
from codefactory.domain import Run
from codefactory.policy.port import EntityRef, PolicyEngine


@dataclass(frozen=True, kw_only=True)
class RunReadPolicy:
    """Decides the context reads of `run` by `engine` (cleared for `engine_classes`)."""

    policy: PolicyEngine
    run: Run
    engine: str
    engine_classes: Sequence[str]
    reader: str = "loop"

    def __call__(self, request: ReadRequest) -> str | None:
        """Why `request` may not be read, or None."""
        if request.data_class not in self.engine_classes:
            cleared = ", ".join(self.engine_classes) or "none"
            return (
                f"{request.connector} holds {request.data_class} data and the engine "
                f"{self.engine} is cleared for {cleared} only"
            )
        decision = self.policy.authorize(
            principal=str(EntityRef(type="Engine", id=self.engine)),
            action='Action::"read-context"',
            resource=str(EntityRef(type="Source", id=request.connector)),
            context={
                "source": request.connector,
                "data_class": request.data_class,
                "scope": str(request.scope),
                "operation": request.operation,
                "reader": self.reader,
                "engine_classes": list(self.engine_classes),
                "sponsor": self.run.sponsor,
                "agent": self.run.agent_id,
                "kind": self.run.kind.value,
                "run": self.run.id,
            },
        )
        return None if decision.allowed else decision.summary
