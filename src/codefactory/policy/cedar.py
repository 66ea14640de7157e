"""Cedar policies behind the `PolicyEngine` port, evaluated by cedarpy without a schema.

Every policy carries `@id("...")` (what the audit record names) and `@reason("...")` (what a
refused requester reads). Cedar's semantics apply: a matching `forbid` wins over any
`permit`, and a request no `permit` matches is denied. One rule is stricter than Cedar's:
Cedar skips a policy whose condition fails to evaluate, which would let a broken `forbid`
fail open, so any evaluation error makes the decision a deny.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cedarpy

from codefactory.domain import Decision
from codefactory.policy.errors import PolicyInvalid
from codefactory.policy.port import AuthorizationRequest, EntityRef


def default_policy_path() -> Path:
    """The policy shipped with Code Factory (see `schema.md` beside it)."""
    return Path(__file__).with_name("default.cedar")


def schema_path() -> Path:
    """The Cedar schema the shipped and example policies conform to."""
    return Path(__file__).with_name("schema.cedarschema")


def examples_path() -> Path:
    """The folder of example policies (see `examples/README.md`)."""
    return Path(__file__).with_name("examples")


@dataclass(frozen=True, kw_only=True)
class _Annotations:
    id: str
    reason: str


class CedarPolicy:
    """A Cedar policy set, checked at construction: it parses and every policy is annotated."""

    def __init__(self, policy_text: str, *, source: str = "<policy text>") -> None:
        self.source = source
        self.text = policy_text
        self._annotations = _read_annotations(policy_text, source)
        self._policies = cedarpy.PolicySet.from_str(policy_text)

    @classmethod
    def from_file(cls, path: str | Path) -> CedarPolicy:
        """The policies in the file at `path`, or in every `*.cedar` file of the folder at
        `path` (in name order); `PolicyInvalid` names the file if unusable."""
        folder = Path(path)
        files = sorted(folder.glob("*.cedar")) if folder.is_dir() else [folder]
        texts = []
        for file in files:
            try:
                texts.append(file.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as error:
                raise PolicyInvalid(str(file), f"cannot read it: {error}") from error
        return cls("\n".join(texts), source=str(path))

    @classmethod
    def from_files(cls, *paths: str | Path) -> CedarPolicy:
        """The policies of several files (say, the default plus examples) as one set."""
        texts = [cls.from_file(path).text for path in paths]
        return cls("\n".join(texts), source=" + ".join(str(path) for path in paths))

    @classmethod
    def default(cls) -> CedarPolicy:
        """The shipped default policy."""
        return cls.from_file(default_policy_path())

    def validate(self, schema_text: str) -> list[str]:
        """Type errors of these policies against a Cedar schema; empty when they conform."""
        result = cedarpy.validate_policies(self.text, schema_text)
        order = {cedar_id: notes.id for cedar_id, notes in self._annotations.items()}
        return [
            f"{order.get(error.policy_id, error.policy_id)}: {error.error}"
            for error in result.errors
        ]

    @property
    def policy_ids(self) -> tuple[str, ...]:
        """The `@id` of every policy, in file order."""
        return tuple(notes.id for notes in self._annotations.values())

    def authorize(
        self,
        *,
        principal: str,
        action: str,
        resource: str,
        context: Mapping[str, Any],
        entities: Sequence[Mapping[str, Any]] = (),
    ) -> Decision:
        """Decide one request.

        `principal` and `resource` are Cedar entity uids (`TriggerSource::"jira"`,
        `Repository::"sample-service"`); `action` is an action name (`bump_dependency`) or a
        uid (`Action::"bump_dependency"`). Sets in `context` become Cedar sets.
        """
        request = AuthorizationRequest(
            principal=principal, action=action, resource=resource, context=context
        )
        return self.authorize_batch([request], entities)[0]

    def authorize_batch(
        self,
        requests: Sequence[AuthorizationRequest],
        entities: Sequence[Mapping[str, Any]] = (),
    ) -> list[Decision]:
        """Decide `requests` in one `cedarpy.is_authorized_batch` call over `entities`."""
        if not requests:
            return []
        cedar_requests = [
            {
                "principal": _uid(request.principal),
                "action": _action(request.action),
                "resource": _uid(request.resource),
                "context": _cedar_json(request.context),
            }
            for request in requests
        ]
        results = cedarpy.is_authorized_batch(
            cedar_requests, self._policies, _cedar_json(list(entities))
        )
        return [self._decision(result) for result in results]

    def _decision(self, result: cedarpy.AuthzResult) -> Decision:
        errors = tuple(result.diagnostics.errors)
        allowed = result.allowed and not errors
        if result.allowed and errors:
            deciding: list[_Annotations] = []  # the permits did not decide this deny
        else:
            order = list(self._annotations)
            cedar_ids = sorted(result.diagnostics.reasons, key=order.index)
            deciding = [self._annotations[cedar_id] for cedar_id in cedar_ids]
        return Decision(
            allowed=allowed,
            policy_ids=tuple(notes.id for notes in deciding),
            reasons=tuple(notes.reason for notes in deciding),
            errors=errors,
        )


def _read_annotations(policy_text: str, source: str) -> dict[str, _Annotations]:
    """The `@id` and `@reason` of each policy, keyed by Cedar's own id (`policy0`, …)."""
    try:
        parsed = json.loads(cedarpy.policies_to_json_str(policy_text))
    except ValueError as error:
        raise PolicyInvalid(source, f"not valid Cedar: {error}") from error
    if parsed["templates"]:
        raise PolicyInvalid(source, "templates (?principal, ?resource) are not supported")
    annotations: dict[str, _Annotations] = {}
    for cedar_id, policy in parsed["staticPolicies"].items():
        notes = policy.get("annotations", {})
        for key in ("id", "reason"):
            if not notes.get(key):
                where = f'the policy @id("{notes["id"]}")' if notes.get("id") else cedar_id
                raise PolicyInvalid(source, f"{where} needs a non-empty @{key}(...) annotation")
        if notes["id"] in {seen.id for seen in annotations.values()}:
            raise PolicyInvalid(source, f'two policies have @id("{notes["id"]}")')
        annotations[cedar_id] = _Annotations(id=notes["id"], reason=notes["reason"])
    return annotations


def _uid(value: str | EntityRef) -> str | dict[str, str]:
    """Cedar's JSON form for an `EntityRef` (any id, no parsing); text uids pass through."""
    return {"type": value.type, "id": value.id} if isinstance(value, EntityRef) else value


def _action(action: str) -> str | dict[str, str]:
    return action if "::" in action else {"type": "Action", "id": action}


def _cedar_json(value: Any) -> Any:
    """`value` as the JSON cedarpy takes: mappings to objects, sets and tuples to arrays."""
    if isinstance(value, Mapping):
        return {str(key): _cedar_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_cedar_json(item) for item in value]
    return value
