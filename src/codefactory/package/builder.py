"""The default package builder: one folder per run, written atomically, never rewritten."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from codefactory.domain import Change, ChangeKind, ChangePackage, CheckResult
from codefactory.package.attestation import Attestor, attest
from codefactory.package.cab import cab_record
from codefactory.package.errors import DuplicateEvidence, PackageExists, UnsafeName
from codefactory.package.manifest import write_manifest
from codefactory.package.port import PackageContents
from codefactory.package.provenance import DsseProvenance
from codefactory.package.risk import RiskAssessment, assess_risk
from codefactory.package.rollback import rollback_plan
from codefactory.verify.changed_coverage import changed_coverage_of

__all__ = ["FolderPackageBuilder", "PackageContents"]

COVERAGE_EVIDENCE = "coverage.json"
"""The coverage of the changed lines (`verify/changed_coverage.py`), in `evidence/`."""


def _plain_name(what: str, name: str) -> str:
    """A single path component: nothing that could climb out of the package folder."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        raise UnsafeName(what, name)
    return name


def _cell(text: str) -> str:
    """Untrusted text made safe for one Markdown table cell or line."""
    flat = " ".join(text.split())
    return flat.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")


def _fenced(text: str) -> str:
    """Untrusted text shown verbatim: a fence longer than any backtick run inside it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text.rstrip()}\n{fence}"


def _evidence(results: tuple[CheckResult, ...]) -> dict[str, CheckResult]:
    by_name: dict[str, CheckResult] = {}
    for result in results:
        if not result.evidence_name:
            continue
        name = _plain_name("evidence name", result.evidence_name)
        if name in by_name:
            raise DuplicateEvidence(name, (by_name[name].check, result.check))
        by_name[name] = result
    if COVERAGE_EVIDENCE in by_name:  # the package's own evidence file
        raise DuplicateEvidence(COVERAGE_EVIDENCE, (by_name[COVERAGE_EVIDENCE].check, "coverage"))
    return by_name


def _checks_table(results: tuple[CheckResult, ...]) -> list[str]:
    rows = [
        "| check | result | findings | blocking | evidence |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in results:
        blocking = sum(1 for f in r.findings if f.blocking)
        evidence = f"`evidence/{r.evidence_name}`" if r.evidence_name else ""
        outcome = "skipped" if r.skipped else ("pass" if r.passed else "**FAIL**")
        rows.append(
            f"| {_cell(r.check)} | {outcome} | {len(r.findings)} | {blocking} | {evidence} |"
        )
    return rows


def _sources(sources: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per context item the engine was given: its citation, title, class, where a
    human finds it, and what was masked or cut (design rationale, issue 13)."""
    if not sources:
        return ["- none gathered beyond the ticket"]
    lines = []
    for source in sources:
        masked = source.get("masked") or {}
        notes = [f"{count} {kind} masked" for kind, count in sorted(masked.items())]
        if source.get("truncated"):
            notes.append("truncated")
        where = f" <{source['uri']}>" if source.get("uri") else ""
        extra = f" ({'; '.join(notes)})" if notes else ""
        lines.append(
            f"- `{_cell(str(source.get('source')))}:{_cell(str(source.get('id')))}` "
            f"[{_cell(str(source.get('data_class')))}] {_cell(str(source.get('title', '')))}"
            f"{where}{extra}"
        )
    return lines


def summary(contents: PackageContents, risk: RiskAssessment) -> str:
    """`summary.md`: what a reviewer reads first, ending with how to approve."""
    run, trigger, proposal = contents.run, contents.trigger, contents.proposal
    files = [
        f"- `{_cell(f.path)}` ({'deleted' if f.content is None else 'added or modified'})"
        for f in contents.change.files
    ]
    lines = [
        f"# Change package for run {run.id}",
        "",
        "| | |",
        "| --- | --- |",
        f"| Ticket | {_cell(trigger.source)} {_cell(trigger.external_id)}: "
        f"{_cell(trigger.title)} |",
        f"| Links | {_cell(' '.join(trigger.links)) or '-'} |",
        f"| Requested by | {_cell(trigger.actor)} |",
        f"| Sponsor | {_cell(run.sponsor)} |",
        f"| Agent | {_cell(run.agent_id)} |",
        f"| Engine | {_cell(proposal.engine)} {_cell(proposal.engine_version)} |",
        f"| Rounds | {contents.rounds} |",
        f"| Risk | {risk.level} (score {risk.score}); see `risk.json` |",
        "",
        "## Rationale (written by the engine)",
        "",
        _fenced(proposal.rationale),
        "",
        "## Context the engine was given",
        "",
        *_sources(contents.sources),
        "",
        "## Checks (last round)",
        "",
        *_checks_table(contents.results),
        "",
        "## Coverage of the changed lines",
        "",
        f"{_cell(changed_coverage_of(contents.results).summary_line())}; "
        f"see `evidence/{COVERAGE_EVIDENCE}`",
        "",
        "## Risk factors",
        "",
        *(f"- {_cell(factor)}" for factor in risk.factors),
        "",
        f"## Files changed ({len(files)})",
        "",
        *files,
        "",
        "## Where the change is",
        "",
        f"Branch `{contents.branch}` at commit `{contents.commit}` in the forge repository "
        f"`{contents.forge_repository}`; the patch is `change.patch`. Inspect it with "
        f"`git -C {contents.forge_repository} show {contents.commit}`.",
        "",
        "## How to approve",
        "",
        "```sh",
        f"codefactory review approve {run.id} --as <you> --key ~/.ssh/id_ed25519",
        "```",
        "",
        "The verdict is a statement signed with your SSH key (a key the directory lists as "
        "yours); it is kept under `reviews/` with its signature. "
        "Segregation of duties: the sponsor, the agent and the person who caused the trigger "
        "cannot approve. "
        "The backout is in `rollback.md`, the change record in `cab.json`.",
    ]
    return "\n".join(lines) + "\n"


class FolderPackageBuilder:
    """Writes `<packages_dir>/<run-id>/`: patch, evidence, risk, rollback, CAB record, summary."""

    def __init__(
        self,
        packages_dir: Path,
        *,
        provenance: DsseProvenance | None = None,
        attestor: Attestor | None = None,
    ) -> None:
        self.packages_dir = packages_dir
        self.provenance = provenance
        self.attestor = attestor
        """The issuer that signs `attestation.dsse.json` (run, commit, manifest digest)."""

    def risk_level(self, change: Change, kind: ChangeKind, results: Sequence[CheckResult]) -> str:
        """`assess_risk` of the change without its patch: `low`, `moderate` or `high`."""
        return assess_risk(change, kind, results).level

    def build(self, contents: PackageContents) -> ChangePackage:
        """Build in a hidden sibling folder, then rename it into place: all or nothing."""
        run_id = _plain_name("run id", contents.run.id)
        target = self.packages_dir / run_id
        if target.exists():
            raise PackageExists(run_id, target)
        evidence = _evidence(contents.results)
        risk = assess_risk(
            contents.change, contents.run.kind, contents.results, patch=contents.patch
        )
        self.packages_dir.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{run_id}.", dir=self.packages_dir))
        try:
            digest = self._write(scratch, contents, evidence, risk)
            attestation = ""
            if self.attestor is not None:
                attestation = attest(
                    scratch,
                    run_id=run_id,
                    commit=contents.commit,
                    package_digest=digest,
                    issuer=self.attestor,
                )
            files = sorted(p.relative_to(scratch).as_posix() for p in scratch.rglob("*"))
            self._move_into_place(scratch, target, run_id)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return ChangePackage(
            run_id=run_id,
            directory=target,
            branch=contents.branch,
            commit=contents.commit,
            risk_level=risk.level,
            files=tuple(f for f in files if (target / f).is_file()),
            package_digest=digest,
            attestation_digest=attestation,
        )

    def _write(
        self,
        folder: Path,
        contents: PackageContents,
        evidence: dict[str, CheckResult],
        risk: RiskAssessment,
    ) -> str:
        backout = rollback_plan(contents)
        record = cab_record(contents, risk, backout)
        patch = contents.patch.encode("utf-8", "surrogateescape")
        (folder / "change.patch").write_bytes(patch)
        (folder / "evidence").mkdir()
        for name, result in evidence.items():
            (folder / "evidence" / name).write_text(result.evidence, encoding="utf-8")
        coverage = changed_coverage_of(contents.results).to_json()
        (folder / "evidence" / COVERAGE_EVIDENCE).write_text(coverage, encoding="utf-8")
        (folder / "risk.json").write_text(risk.to_json(), encoding="utf-8")
        (folder / "rollback.md").write_text(backout, encoding="utf-8")
        cab = json.dumps(record, indent=2, ensure_ascii=False) + "\n"
        (folder / "cab.json").write_text(cab, encoding="utf-8")
        (folder / "summary.md").write_text(summary(contents, risk), encoding="utf-8")
        if self.provenance is not None:
            self.provenance.write(folder, contents, patch)
        return write_manifest(folder)  # last: the digest a reviewer signs covers every file

    @staticmethod
    def _move_into_place(scratch: Path, target: Path, run_id: str) -> None:
        try:
            # rename(2) is atomic; it fails on a non-empty folder that appeared meanwhile.
            os.rename(scratch, target)
        except OSError as error:
            raise PackageExists(run_id, target) from error
