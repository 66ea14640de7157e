"""The tool gate of a run: policy decides every tool call an engine makes, the audit log
records it, then (and only then) it executes.

Cedar is asked `Action::"tool-call"` with the engine as principal, the repository as
resource and the tool's name, canonical arguments, path and command as context
(`policy/schema.cedarschema`); a patch is asked once per path it touches, and one refusal
refuses the call. Each call is one `tool-called` audit event: the arguments' SHA-256 and a
short preview (a file's new content can be large), the decision and its policies.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from codefactory.audit.events import ToolCalled
from codefactory.domain import Decision, Run
from codefactory.engines.patches import (
    PathNotAllowed,
    UnreadablePatch,
    normal_path,
    patch_paths,
)
from codefactory.engines.session import ToolRefused
from codefactory.policy.paths import repository_entity
from codefactory.policy.port import AuthorizationRequest, EntityRef, PolicyEngine
from codefactory.policy.scope import repository_of
from codefactory.store.port import RunRepository

PREVIEW_CHARS = 240


def canonical_arguments(arguments: Mapping[str, Any]) -> str:
    """The arguments as canonical JSON (sorted keys, no spaces): what policy and audit see."""
    return json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)


class PolicyToolGate:
    """A `ToolGate` bound to one run and engine."""

    def __init__(
        self, *, policy: PolicyEngine, store: RunRepository, run: Run, engine: str
    ) -> None:
        self.policy = policy
        self.store = store
        self.run = run
        self.engine = engine
        self.calls = 0

    def __call__(self, tool: str, arguments: Mapping[str, Any]) -> None:
        """Decide, record, and raise `ToolRefused` with the policies' reasons when refused."""
        self.calls += 1
        text = canonical_arguments(arguments)
        try:
            paths = self._paths(tool, arguments)
        except (UnreadablePatch, PathNotAllowed) as err:  # what policy cannot read, it refuses
            paths, unreadable = [""], str(err)
        else:
            unreadable = ""
        decisions = self.policy.authorize_batch(
            [self._request(tool, text, arguments, path) for path in paths],
            [repository_entity(self.run.repository)],
        )
        if unreadable:
            decisions.append(Decision(allowed=False, reasons=(unreadable,)))
        refused = [d for d in decisions if not d.allowed]
        decision = refused[0] if refused else decisions[0]
        with self.store.atomic() as tx:
            tx.append(
                ToolCalled(
                    actor=self.run.agent_id,
                    run_id=self.run.id,
                    engine=self.engine,
                    tool=tool,
                    call=self.calls,
                    arguments_sha256=hashlib.sha256(text.encode()).hexdigest(),
                    arguments_preview=text[:PREVIEW_CHARS],
                    arguments_bytes=len(text.encode()),
                    allowed=not refused,
                    policy_ids=sorted({p for d in decisions for p in d.policy_ids}),
                    reason=decision.summary if refused else "",
                )
            )
        if refused:
            raise ToolRefused(_summary(refused))

    def _paths(self, tool: str, arguments: Mapping[str, Any]) -> list[str]:
        """The normal spelling of every path the call names (what the tool will act on):
        policy is never asked about `./x` while the tool writes `x`."""
        if tool == "apply_patch":
            named = patch_paths(str(arguments.get("patch", "")))
            return [normal_path(path) for path in named] or [""]
        if "path" not in arguments:
            return [""]
        return [normal_path(str(arguments["path"]), allow_root=True)]

    def _request(
        self, tool: str, text: str, arguments: Mapping[str, Any], path: str
    ) -> AuthorizationRequest:
        return AuthorizationRequest(
            principal=EntityRef(type="Engine", id=self.engine),
            action='Action::"tool-call"',
            resource=repository_of(self.run),
            context={
                "tool": tool,
                "arguments": text,
                "path": path,
                "command": str(arguments.get("command", "")),
                "sponsor": self.run.sponsor,
                "agent": self.run.agent_id,
                "kind": self.run.kind.value,
                "run": self.run.id,
            },
        )


def _summary(refused: list[Decision]) -> str:
    return "; ".join(dict.fromkeys(d.summary for d in refused))
