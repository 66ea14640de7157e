"""The wrapper every tool call goes through: the run's tool gate, then the tool.

`GatedToolset` wraps the agent's function toolset (pydantic-ai's `WrapperToolset`, the way
its `ApprovalRequiredToolset` asks for approval): it counts the call, asks the session's
`ToolGate` (Cedar decides, the audit log records), and only then delegates. A refusal goes
back to the model as a failed tool result, `refused by policy: <reason>`, and the tool does
not run. A file write the sandbox refuses is reported to the model the same way, so a bad
call never ends the run; an error of the gate itself does (fail closed).

With the run's masker (`mask`, `unmask`), what a tool returns is masked before the model
reads it (the same placeholders as in the task). Placeholders are put back only where an
edit must match the file's real text: `edit_file`'s `old`, and in its `new` only those
`old` holds; in a patch, those of its removed and kept lines, and in its added lines only
those. A placeholder the model writes anywhere else stays a placeholder, so a value from a
ticket or a log can never be written into the workspace or read back through a command.
The gate and the audit log see the arguments as the model wrote them.
"""

from __future__ import annotations

import re
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
        arguments = restored(name, tool_args, self.unmask) if self.unmask else tool_args
        try:
            result = await super().call_tool(name, arguments, ctx, tool)
        except (OSError, ValueError) as exc:  # a write the sandbox refused, a bad path
            raise ToolFailed(self._masked(f"{name} failed in the sandbox: {exc}")) from exc
        except ToolFailed as exc:  # its message may quote the workspace (a command's output)
            raise ToolFailed(self._masked(str(exc))) from exc
        return _mapped(result, self.mask) if self.mask else result

    def _masked(self, text: str) -> str:
        return self.mask(text) if self.mask else text


_PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*_[1-9][0-9]*>")


def restored(tool: str, arguments: dict[str, Any], unmask: Callable[[str], str]) -> dict[str, Any]:
    """`arguments` with the placeholders an edit needs put back (module docstring); every
    other tool's arguments unchanged."""
    if tool == "edit_file" and isinstance(arguments.get("old"), str):
        old = arguments["old"]
        allowed = set(_PLACEHOLDER.findall(old))
        restored_args = dict(arguments, old=unmask(old))
        if isinstance(arguments.get("new"), str):
            restored_args["new"] = _unmask_only(arguments["new"], allowed, unmask)
        return restored_args
    if tool == "apply_patch" and isinstance(arguments.get("patch"), str):
        return dict(arguments, patch=_restored_patch(arguments["patch"], unmask))
    return arguments


def _unmask_only(text: str, allowed: set[str], unmask: Callable[[str], str]) -> str:
    return _PLACEHOLDER.sub(
        lambda m: unmask(m.group(0)) if m.group(0) in allowed else m.group(0), text
    )


def _restored_patch(patch: str, unmask: Callable[[str], str]) -> str:
    lines = patch.splitlines(keepends=True)
    allowed = {
        found
        for line in lines
        if line[:1] in ("-", " ") and not line.startswith("---")
        for found in _PLACEHOLDER.findall(line)
    }
    return "".join(
        _unmask_only(line, allowed, unmask) if not line.startswith(("---", "+++")) else line
        for line in lines
    )


def _mapped(value: Any, change: Callable[[str], str]) -> Any:
    """`value` with `change` applied to every string in it (dicts and lists walked)."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {key: _mapped(item, change) for key, item in value.items()}
    if isinstance(value, list):
        return [_mapped(item, change) for item in value]
    return value
