"""The wrapper every tool call goes through: the run's tool gate, then the tool.

`GatedToolset` wraps the agent's function toolset (pydantic-ai's `WrapperToolset`, the way
its `ApprovalRequiredToolset` asks for approval): it counts the call, asks the session's
`ToolGate` (Cedar decides, the audit log records), and only then delegates. A refusal goes
back to the model as a failed tool result, `refused by policy: <reason>`, and the tool does
not run. A file write the sandbox refuses is reported to the model the same way, so a bad
call never ends the run; an error of the gate itself does (fail closed).

With the run's masker (`mask`, `unmask`), what a tool returns is masked before the model
reads it (the same placeholders as in the task), and the placeholders in the model's
arguments are put back before the tool acts (an edit of a line holding `<EMAIL_ADDRESS_1>`
edits the file's real line); the gate and the audit log see the arguments as the model
wrote them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic_ai import RunContext, ToolFailed
from pydantic_ai.toolsets import ToolsetTool, WrapperToolset

from codefactory.engines.session import ToolGate, ToolRefused


@dataclass
class GatedToolset(WrapperToolset[Any]):
    """Ask `gate` before each call of a wrapped tool; count calls per tool name."""

    gate: ToolGate = field(kw_only=True)
    calls: Counter[str] = field(default_factory=Counter, kw_only=True)
    """Every call the model made, refused ones included, per tool name."""
    refused: Counter[str] = field(default_factory=Counter, kw_only=True)
    mask: Callable[[str], str] | None = field(default=None, kw_only=True)
    unmask: Callable[[str], str] | None = field(default=None, kw_only=True)

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        self.calls[name] += 1
        try:
            # in the loop's thread, the caller's: a gate that writes the run's store keeps
            # its connection in the thread that opened it
            self.gate(name, dict(tool_args))
        except ToolRefused as refusal:
            self.refused[name] += 1
            raise ToolFailed(f"refused by policy: {refusal}") from refusal
        arguments = _mapped(tool_args, self.unmask) if self.unmask else tool_args
        try:
            result = await super().call_tool(name, arguments, ctx, tool)
        except (OSError, ValueError) as exc:  # a write the sandbox refused, a bad path
            raise ToolFailed(self._masked(f"{name} failed in the sandbox: {exc}")) from exc
        except ToolFailed as exc:  # its message may quote the workspace (a command's output)
            raise ToolFailed(self._masked(str(exc))) from exc
        return _mapped(result, self.mask) if self.mask else result

    def _masked(self, text: str) -> str:
        return self.mask(text) if self.mask else text


def _mapped(value: Any, change: Callable[[str], str]) -> Any:
    """`value` with `change` applied to every string in it (dicts and lists walked)."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {key: _mapped(item, change) for key, item in value.items()}
    if isinstance(value, list):
        return [_mapped(item, change) for item in value]
    return value
