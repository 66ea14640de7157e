"""OSV records: reading one file, checking its shape, and turning it into matchers.

`parse_record` gives, per supported ecosystem package an OSV record names, an `Affected`:
the `Advisory` (who it is, what fixes it) and the version facts that match it (`versions`,
and `ECOSYSTEM`/`SEMVER` ranges in the ecosystem's order, `ecosystems.py`). `check_record`
checks the same shape without building matchers, for imports of whole archives.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from codefactory.advisories.ecosystems import PYPI, SCHEMES, VersionScheme
from codefactory.advisories.errors import AdvisoryFileInvalid

YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_Key = tuple[str, str]  # (ecosystem, package key)

# (kind, version); version None means `introduced: "0"`, before every release. The version is
# a packaging `Version` (PyPI) or a `semver.Version` (npm): ordered within its ecosystem only.
_Event = tuple[str, Any]


@dataclass(frozen=True, kw_only=True)
class Advisory:
    """One advisory as it concerns one package of one ecosystem: who it is, what fixes it."""

    id: str
    aliases: tuple[str, ...]
    summary: str
    package: str
    fixed: tuple[str, ...]
    severity: str = ""
    ecosystem: str = PYPI

    @property
    def names(self) -> tuple[str, ...]:
        """The id then its aliases, as a reviewer searches for them."""
        return (self.id, *self.aliases)


@dataclass(frozen=True, kw_only=True)
class Affected:
    """An advisory with the version facts needed to match it."""

    advisory: Advisory
    versions: frozenset[Any]
    ranges: tuple[tuple[_Event, ...], ...]

    def affects(self, version: Any, raw: str) -> bool:
        if (raw.strip() if version is None else version) in self.versions:
            return True
        if version is None:
            return False
        return any(_in_range(version, events) for events in self.ranges)


def _in_range(version: Any, events: tuple[_Event, ...]) -> bool:
    """OSV's reference evaluation of one range's sorted events."""
    affected = False
    for kind, at in events:
        if kind == "introduced":
            affected = affected or at is None or version >= at
        elif at is not None and kind == "fixed" and version >= at:
            affected = False
        elif at is not None and kind == "last_affected" and version > at:
            affected = False
    return affected


def _expect(value: Any, kind: type, what: str) -> Any:
    if not isinstance(value, kind):
        raise TypeError(f"{what} must be a {kind.__name__}, not {type(value).__name__}")
    return value


def _listed(value: Any, what: str) -> list[Any]:
    """An OSV array field: absent or `null` is empty; anything else must be a list."""
    return [] if value is None else list(_expect(value, list, what))


def read_record(path: Path) -> Any:
    """The parsed content of one OSV file (YAML or JSON); AdvisoryFileInvalid when unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
        return json.loads(text) if path.suffix == ".json" else yaml.load(text, YAML_LOADER)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        raise AdvisoryFileInvalid(path, " ".join(str(exc).split()) or repr(exc)) from exc


def parse_record(record: Any) -> list[Affected]:
    """The PyPI and npm entries of one OSV record (none when withdrawn); TypeError or
    ValueError if it is malformed. Every `affected` entry is checked, whatever its ecosystem.
    A `null` list is read as absent: OSV's JSON schema (validation/schema.json) allows it
    for `aliases`, `severity` and `affected`; `versions` and `ranges` are read the same way."""
    _expect(record, dict, "the record")
    record_id = _expect(record.get("id"), str, "`id`")
    if record.get("withdrawn"):
        return []
    aliases = tuple(
        _expect(a, str, "an alias") for a in _listed(record.get("aliases"), "`aliases`")
    )
    details = _expect(record.get("details") or "", str, "`details`")
    summary = record.get("summary") or (details.strip().splitlines() or [""])[0]
    severity = _severity(record.get("severity") or [])
    grouped: dict[_Key, list[Mapping[str, Any]]] = defaultdict(list)
    for affected in _listed(record.get("affected"), "`affected`"):
        package = _expect(
            _expect(affected, dict, "an `affected` entry").get("package"), dict, "`package`"
        )
        name = _expect(package.get("name"), str, "`package.name`")
        scheme = SCHEMES.get(str(package.get("ecosystem")))
        if scheme is not None:
            grouped[(scheme.ecosystem, scheme.package_key(name))].append(affected)
    base = Advisory(id=record_id, aliases=aliases, summary=str(summary), package="", fixed=())
    return [
        _entry(base, SCHEMES[ecosystem], name, severity, blocks)
        for (ecosystem, name), blocks in grouped.items()
    ]


def check_record(record: Any) -> set[str]:
    """Check one OSV record's shape as `parse_record` reads it, without building matchers
    (an import validates tens of thousands); returns the supported ecosystems its `affected`
    entries name (none when withdrawn). TypeError or ValueError if it is malformed."""
    _expect(record, dict, "the record")
    _expect(record.get("id"), str, "`id`")
    if record.get("withdrawn"):
        return set()
    for alias in _listed(record.get("aliases"), "`aliases`"):
        _expect(alias, str, "an alias")
    _expect(record.get("details") or "", str, "`details`")
    _severity(record.get("severity") or [])
    named: set[str] = set()
    for affected in _listed(record.get("affected"), "`affected`"):
        package = _expect(
            _expect(affected, dict, "an `affected` entry").get("package"), dict, "`package`"
        )
        _expect(package.get("name"), str, "`package.name`")
        scheme = SCHEMES.get(str(package.get("ecosystem")))
        if scheme is not None:
            named.add(scheme.ecosystem)
            _check_versions(scheme, affected)
    return named


def _check_versions(scheme: VersionScheme, block: Mapping[str, Any]) -> None:
    for raw in _listed(block.get("versions"), "`versions`"):
        _expect(raw, str, "a listed version")
    for spec in _listed(block.get("ranges"), "`ranges`"):
        _expect(spec, dict, "a range")
        if _expect(spec.get("type"), str, "a range `type`") not in scheme.range_types:
            continue
        for event in _expect(spec.get("events"), list, "range `events`"):
            for kind, raw in _expect(event, dict, "a range event").items():
                if kind in ("introduced", "fixed", "last_affected"):
                    _expect(raw, str, f"`{kind}`")


def _severity(entries: Any) -> str:
    for entry in _expect(entries, list, "`severity`"):
        score = _expect(entry, dict, "a `severity` entry").get("score")
        if score:
            return str(score)
    return ""


def _entry(
    base: Advisory,
    scheme: VersionScheme,
    package: str,
    severity: str,
    blocks: list[Mapping[str, Any]],
) -> Affected:
    versions: set[Any] = set()
    ranges: list[tuple[_Event, ...]] = []
    for block in blocks:
        for raw in _listed(block.get("versions"), "`versions`"):
            text = _expect(raw, str, "a listed version")
            parsed = scheme.parse(text)
            versions.add(text.strip() if parsed is None else parsed)
        for spec in _listed(block.get("ranges"), "`ranges`"):
            _expect(spec, dict, "a range")
            if _expect(spec.get("type"), str, "a range `type`") in scheme.range_types:
                events = _expect(spec.get("events"), list, "range `events`")
                ranges.append(_events(scheme, events))
    fixed = sorted(
        {at for events in ranges for kind, at in events if kind == "fixed" and at is not None}
    )
    advisory = Advisory(
        id=base.id,
        aliases=base.aliases,
        summary=base.summary,
        package=package,
        fixed=tuple(str(v) for v in fixed),
        severity=severity,
        ecosystem=scheme.ecosystem,
    )
    return Affected(advisory=advisory, versions=frozenset(versions), ranges=tuple(ranges))


def _events(scheme: VersionScheme, raw_events: list[Any]) -> tuple[_Event, ...]:
    events: list[_Event] = []
    for event in raw_events:
        for kind, raw in _expect(event, dict, "a range event").items():
            if kind not in ("introduced", "fixed", "last_affected"):
                continue  # `limit` only bounds GIT ranges
            at = None if raw == "0" else scheme.parse(str(_expect(raw, str, f"`{kind}`")))
            if at is not None or kind == "introduced":
                events.append((kind, at))
    # `introduced: "0"` sorts first; otherwise the ecosystem's order. Stable: equal versions
    # keep the record's order.
    starts = [e for e in events if e[1] is None]
    return tuple(starts + sorted((e for e in events if e[1] is not None), key=lambda e: e[1]))
