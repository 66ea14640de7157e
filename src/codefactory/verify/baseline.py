"""Only what the change introduced blocks: findings compared with the base commit's.

Each finding gets a SARIF `baselineState`: `new` (not at the base), `unchanged` (the same
fingerprint was at the base) or `absent` (at the base, gone after the change; reported, never
blocking). Fingerprints match as a multiset: a second copy of an existing finding is new.
A "could not judge" finding is always new. Without a baseline every finding is new.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from codefactory.domain import Change, CheckResult, FileChange, Finding
from codefactory.verify.base import BaseTrees, BaseUnavailable
from codefactory.verify.cache import (
    REPOSITORY_PATH,
    CacheKey,
    VerifyCache,
    findings_from_json,
    findings_to_json,
)
from codefactory.verify.diff import DiffedChange, base_of, read_files
from codefactory.verify.findings import cannot_judge, fingerprinted
from codefactory.verify.port import Baseline, Check, ComparedCheck

NEW, UNCHANGED, ABSENT = "new", "unchanged", "absent"


def compare(found: Sequence[Finding], base: Sequence[Finding] | None) -> list[Finding]:
    """`found` with baseline states, then the base's findings that are gone (`absent`)."""
    if base is None:
        return [replace(f, baseline_state=NEW) for f in found]
    left = Counter(f.fingerprint for f in base if not cannot_judge(f.rule))
    compared = []
    for finding in found:
        if not cannot_judge(finding.rule) and left[finding.fingerprint] > 0:
            left[finding.fingerprint] -= 1
            compared.append(replace(finding, baseline_state=UNCHANGED))
        else:
            compared.append(replace(finding, baseline_state=NEW))
    for finding in base:
        if not cannot_judge(finding.rule) and left[finding.fingerprint] > 0:
            left[finding.fingerprint] -= 1
            compared.append(replace(finding, baseline_state=ABSENT, blocking=False))
    return compared


def baseline_kind(check: Check) -> Baseline:
    return check.baseline if isinstance(check, ComparedCheck) else Baseline.NONE


def config_digest(check: Check) -> str:
    return check.config_digest() if isinstance(check, ComparedCheck) else ""


class Baselines:
    """Finds each check's base-commit findings: from the cache, else by running it on the base."""

    def __init__(self, cache: VerifyCache, trees: BaseTrees) -> None:
        self.cache = cache
        self.trees = trees

    def findings(self, check: Check, change: Change) -> tuple[list[Finding] | None, str]:
        """(base findings, note); None when there is no baseline, the note says why."""
        kind = baseline_kind(check)
        try:
            if kind is Baseline.NONE:
                return [], ""
            if kind is Baseline.FILES:
                return self._files(check, change), ""
            if kind is Baseline.DIFF:
                return self._diff(check, change), ""
            if kind is Baseline.REPOSITORY:
                return self._repository(check), ""
            return self._recorded(check), ""
        except BaseUnavailable as exc:
            return None, f"no baseline: {exc}"

    def _key(self, check: Check, path: str = REPOSITORY_PATH) -> CacheKey:
        return CacheKey(
            check=check.name, commit=self.trees.commit, digest=config_digest(check), path=path
        )

    def _files(self, check: Check, change: Change) -> list[Finding]:
        found: list[Finding] = []
        missing: list[FileChange] = []
        for path in change.paths:
            cached = self.cache.get(self._key(check, path))
            if cached is not None:
                found.extend(findings_from_json(cached))
                continue
            known, base = base_of(change, path)
            if not known:
                raise BaseUnavailable(f"the base version of {path} is unknown")
            if base is not None:
                missing.append(FileChange(path=path, content=base))
        if missing:
            scanned = self._run(check, DiffedChange(files=tuple(missing)))
            for file in missing:
                mine = [f for f in scanned if f.path == file.path]
                self.cache.put(self._key(check, file.path), findings_to_json(mine))
                found.extend(mine)
        return found

    def _diff(self, check: Check, change: Change) -> list[Finding]:
        if not isinstance(change, DiffedChange):
            raise BaseUnavailable("the base versions of the changed files are unknown")
        return self._run(check, change.reversed())

    def _repository(self, check: Check) -> list[Finding]:
        cached = self.cache.get(self._key(check))
        if cached is not None:
            return findings_from_json(cached)
        found = self._run(check, Change(files=()))
        self.cache.put(self._key(check), findings_to_json(found))
        return found

    def _recorded(self, check: Check) -> list[Finding]:
        cached = self.cache.get(self._key(check))
        if cached is None:
            raise BaseUnavailable("the base commit's results were not recorded")
        return findings_from_json(cached)

    def _run(self, check: Check, change: Change) -> list[Finding]:
        """The check's findings on the base; BaseUnavailable when it could not judge the base."""
        result: CheckResult = check.run(self.trees.for_scans(), change)
        broken = [f for f in result.findings if cannot_judge(f.rule)]
        if broken or (not result.passed and not result.findings):
            reason = broken[0].message if broken else result.summary
            raise BaseUnavailable(f"the check could not judge the base commit: {reason}")
        return fingerprinted(result.findings, change)


class BaseFiles:
    """The base versions of files, from the cache when known, else read from the base tree."""

    check = "base-file"

    def __init__(self, cache: VerifyCache, trees: BaseTrees) -> None:
        self.cache = cache
        self.trees = trees

    def read(self, paths: Sequence[str]) -> dict[str, bytes | None]:
        """Each path's content at the base commit (None: absent); raises BaseUnavailable or
        BaseUnreadable when the base tree cannot be read."""
        found: dict[str, bytes | None] = {}
        missing: list[str] = []
        for path in paths:
            cached = self.cache.get(self._key(path))
            if cached is None:
                missing.append(path)
            else:
                stored = json.loads(cached)["content"]
                found[path] = None if stored is None else base64.b64decode(stored)
        if missing:
            for path, content in read_files(self.trees.for_scans(), missing).items():
                encoded = None if content is None else base64.b64encode(content).decode()
                self.cache.put(self._key(path), json.dumps({"content": encoded}))
                found[path] = content
        return found

    def _key(self, path: str) -> CacheKey:
        return CacheKey(check=self.check, commit=self.trees.commit, digest="", path=path)
