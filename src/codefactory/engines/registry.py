"""The engine registry: the bank's inventory of cleared coding engines; only these may run.

`load_registry(path)` reads the TOML file (schema in `registry_model.py`, documented in
`docs/engine-registry.md`); `EngineRegistry.status(name, now)` says what an entry amounts to
on a day; `EngineRegistry.check_use(name, kind=..., repository=..., data_class=..., now=...)`
decides whether a run may use it, with the reason a refused run ends with.
"""

from __future__ import annotations

import enum
import tomllib
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from codefactory.domain import ChangeKind
from codefactory.engines.registry_checks import entry_problems, validation_gaps
from codefactory.engines.registry_model import (
    DataClass,
    EngineEntry,
    EngineStatus,
    Lifecycle,
)


def default_registry_path() -> Path:
    """The registry shipped with Code Factory."""
    return Path(__file__).with_name("registry.toml")


class RegistryInvalid(ValueError):
    """The registry file cannot be read or breaks the schema; `problems` lists every one as
    `PATH: engine NAME: FIELD: message`."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        super().__init__(f"engine registry {path} is invalid: " + "; ".join(problems))
        self.path = str(path)
        self.problems = tuple(problems)


class _RegistryFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int = Field(default=1, strict=True, ge=1, le=1)
    engine: list[EngineEntry] = []


class RefusalReason(enum.StrEnum):
    """Why `check_use` refused; stable values for the audit record."""

    UNKNOWN_ENGINE = "unknown-engine"
    NOT_CLEARED = "not-cleared"
    CHANGE_KIND_NOT_APPROVED = "change-kind-not-approved"
    CHANGE_KIND_PROHIBITED = "change-kind-prohibited"
    REPOSITORY_NOT_APPROVED = "repository-not-approved"
    REPOSITORY_PROHIBITED = "repository-prohibited"
    DATA_CLASS_NOT_APPROVED = "data-class-not-approved"


@dataclass(frozen=True, kw_only=True)
class UseDecision:
    """Whether a run may use an engine. `reason` is one human sentence either way; when
    refused, `refusal` says why in a stable code and the run ends `refused` with `reason`."""

    engine: str
    allowed: bool
    reason: str
    refusal: RefusalReason | None = None
    status: EngineStatus | None = None
    """The entry's status at the time asked; None for an engine not in the registry."""
    entry: EngineEntry | None = None


class EngineRegistry:
    """The loaded registry: entries by name, in file order."""

    def __init__(self, entries: list[EngineEntry], *, source: str = "") -> None:
        self.source = source
        """Where it was read from (a path), for messages and the audit event."""
        self._entries = {entry.name: entry for entry in entries}

    def __iter__(self) -> Iterator[EngineEntry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str) -> EngineEntry | None:
        """The entry of that registry name, or None."""
        return self._entries.get(name)

    def status(self, entry: EngineEntry | str, now: datetime) -> EngineStatus | None:
        """`entry_status` of an entry or name; None for a name not in the registry."""
        found = self._resolve(entry)
        return None if found is None else entry_status(found, now)

    def check_use(
        self,
        engine: EngineEntry | str,
        *,
        kind: ChangeKind,
        repository: str,
        data_class: DataClass | str,
        now: datetime,
    ) -> UseDecision:
        """Whether a run of `kind` on `repository` (its canonical id, matched against the entry's
        globs) holding data of `data_class` may use `engine` at `now`.

        Raises ValueError for a change kind or data class that is not one of `ChangeKind` or
        `DataClass` (a caller's bug, not a refusal).
        """
        kind = ChangeKind(kind)
        if data_class not in set(DataClass):
            known = ", ".join(DataClass)
            raise ValueError(f"data class {data_class!r} is not one of {known}")
        wanted = DataClass(data_class)
        name = engine if isinstance(engine, str) else engine.name
        entry = self._resolve(engine)
        if entry is None:
            return UseDecision(
                engine=name,
                allowed=False,
                reason=f"engine {name} is not in the engine registry",
                refusal=RefusalReason.UNKNOWN_ENGINE,
            )
        return _decide(entry, kind, repository, wanted, now)

    def _resolve(self, engine: EngineEntry | str) -> EngineEntry | None:
        return self._entries.get(engine) if isinstance(engine, str) else engine


def entry_status(entry: EngineEntry, now: datetime) -> EngineStatus:
    """What `entry` amounts to at `now` (its UTC date when aware): suspended or retired as
    declared; `unvalidated` without an independent validation done by then; `invalid` when it
    breaks a registry rule; `expired` the day after `next_review`; otherwise `cleared`."""
    today = _day(now)
    if entry.status is Lifecycle.SUSPENDED:
        return EngineStatus.SUSPENDED
    if entry.status is Lifecycle.RETIRED:
        return EngineStatus.RETIRED
    if validation_gaps(entry) or (entry.validated_on and entry.validated_on > today):
        return EngineStatus.UNVALIDATED
    if entry_problems(entry):
        return EngineStatus.INVALID
    if entry.next_review < today:
        return EngineStatus.EXPIRED
    return EngineStatus.CLEARED


def status_reason(entry: EngineEntry, now: datetime) -> str:
    """Why `entry` is not cleared at `now`, as the end of a sentence; '' when cleared."""
    status = entry_status(entry, now)
    why = f": {entry.status_reason}" if entry.status_reason else ""
    if status is EngineStatus.SUSPENDED:
        return f"it is suspended{why}"
    if status is EngineStatus.RETIRED:
        return f"it is retired{why}"
    if status is EngineStatus.UNVALIDATED:
        gaps = validation_gaps(entry) or [f"its validation is dated {entry.validated_on}"]
        return "it is not validated: " + "; ".join(gaps)
    if status is EngineStatus.INVALID:
        return "its registry entry is invalid: " + "; ".join(entry_problems(entry))
    if status is EngineStatus.EXPIRED:
        return f"its next review was due {entry.next_review.isoformat()}"
    return ""


def _decide(
    entry: EngineEntry, kind: ChangeKind, repository: str, data_class: DataClass, now: datetime
) -> UseDecision:
    status = entry_status(entry, now)
    refusal, sentence = _refusal(entry, status, kind, repository, data_class, now)
    if refusal is None:
        sentence = (
            f"engine {entry.name} is cleared for {kind.value} on {repository} "
            f"({data_class.value} data) until {entry.next_review.isoformat()}"
        )
    return UseDecision(
        engine=entry.name,
        allowed=refusal is None,
        reason=sentence,
        refusal=refusal,
        status=status,
        entry=entry,
    )


def _refusal(
    entry: EngineEntry,
    status: EngineStatus,
    kind: ChangeKind,
    repository: str,
    data_class: DataClass,
    now: datetime,
) -> tuple[RefusalReason | None, str]:
    name = entry.name
    if status is not EngineStatus.CLEARED:
        return RefusalReason.NOT_CLEARED, f"engine {name} is not cleared: " + status_reason(
            entry, now
        )
    if kind in entry.prohibited_change_kinds:
        return RefusalReason.CHANGE_KIND_PROHIBITED, f"engine {name} is prohibited from {kind}"
    if kind not in entry.change_kinds:
        approved = ", ".join(entry.change_kinds)
        return (
            RefusalReason.CHANGE_KIND_NOT_APPROVED,
            f"engine {name} is not approved for {kind} (approved: {approved})",
        )
    if matched := _first_match(repository, entry.prohibited_repositories):
        return (
            RefusalReason.REPOSITORY_PROHIBITED,
            f"engine {name} is prohibited on repository {repository} (matches {matched!r})",
        )
    if not _first_match(repository, entry.repositories):
        return (
            RefusalReason.REPOSITORY_NOT_APPROVED,
            f"engine {name} is not approved for repository {repository}",
        )
    if data_class not in entry.data_classes:
        approved = ", ".join(entry.data_classes)
        return (
            RefusalReason.DATA_CLASS_NOT_APPROVED,
            f"engine {name} is not approved for {data_class} data (approved: {approved})",
        )
    return None, ""


def _first_match(repository: str, patterns: list[str]) -> str:
    return next((pattern for pattern in patterns if fnmatchcase(repository, pattern)), "")


def _day(now: datetime) -> date:
    return now.astimezone(UTC).date() if now.tzinfo else now.date()


def load_registry(path: Path | None = None) -> EngineRegistry:
    """Read a registry file (default: the shipped one).

    Raises RegistryInvalid with every problem found: unreadable file, TOML syntax, schema
    (unknown or missing fields, wrong types, unknown change kinds or data classes, dates not
    ISO), or a name used twice.
    """
    source = path or default_registry_path()
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise RegistryInvalid(source, [f"{source}: cannot be read: {err}"]) from err
    return parse_registry(text, source=str(source))


def parse_registry(text: str, *, source: str = "<registry>") -> EngineRegistry:
    """`load_registry` for text already read; `source` names it in messages."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise RegistryInvalid(source, [f"{source}: not TOML: {err}"]) from err
    try:
        parsed = _RegistryFile.model_validate(raw)
    except ValidationError as err:
        raise RegistryInvalid(source, _describe(err, raw, source)) from err
    counts = Counter(entry.name for entry in parsed.engine)
    if twice := sorted(name for name, count in counts.items() if count > 1):
        raise RegistryInvalid(
            source,
            [f"{source}: engine {name}: name: used by {counts[name]} entries" for name in twice],
        )
    return EngineRegistry(list(parsed.engine), source=source)


def _describe(err: ValidationError, raw: Mapping[str, Any], source: str) -> list[str]:
    problems = []
    for error in err.errors():
        loc = list(error["loc"])
        where = source
        if len(loc) >= 2 and loc[0] == "engine" and isinstance(loc[1], int):
            where += f": engine {_entry_name(raw, loc[1])}"
            loc = loc[2:]
        field = ".".join(str(part) for part in loc) or "(entry)"
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {field}: {message}")
    return problems


def _entry_name(raw: Mapping[str, Any], index: int) -> str:
    entries = raw.get("engine")
    name = None
    if isinstance(entries, list) and index < len(entries) and isinstance(entries[index], dict):
        name = entries[index].get("name")
    return name if isinstance(name, str) and name else f"#{index + 1} (no name)"
