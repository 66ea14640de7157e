"""The change record for the change-approval board, in ServiceNow `change_request` fields.

Choice fields carry the values the ServiceNow Table API reads and writes, as strings:
`impact` and `urgency` 1 High, 2 Medium, 3 Low; `priority` 1 Critical … 5 Planning, from the
base system's impact × urgency lookup; `state` -5 New. `risk` is the assessed level as
"high", "moderate" or "low": an SDLC export maps it onto the instance's own choice list.
Fields the factory cannot know (schedule, assignment, closure) stay empty until a human sets
them. Custom fields are `u_`-prefixed, as ServiceNow requires.

Who asked and on whose behalf come only from the factory's own values (the sponsor's
directory person id, the person who caused the trigger, the stored trigger id), never from
payload text; the ticket title appears only in `short_description`, as one escaped line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from codefactory.domain import CheckResult
from codefactory.package.port import PackageContents
from codefactory.package.risk import RiskAssessment
from codefactory.package.rollback import advisory_ids
from codefactory.triggers.text import one_line
from codefactory.verify.changed_coverage import changed_coverage_of

STATE_NEW = "-5"
SHORT_DESCRIPTION_MAX = 160  # the field's length in the base system
IMPACT_BY_RISK = {"high": "1", "moderate": "2", "low": "3"}
# ServiceNow's base priority lookup: (impact, urgency) → priority.
PRIORITY = {
    ("1", "1"): "1", ("1", "2"): "2", ("1", "3"): "3",
    ("2", "1"): "2", ("2", "2"): "3", ("2", "3"): "4",
    ("3", "1"): "3", ("3", "2"): "4", ("3", "3"): "5",
}  # fmt: skip


def is_recipe(engine: str) -> bool:
    """Recipe engines are deterministic and pre-approved; their names start with `recipe`."""
    return engine.startswith("recipe")


def _fixed_advisories(contents: PackageContents) -> list[str]:
    bumps = contents.proposal.details.get("bumps")
    found: list[str] = []
    for bump in bumps if isinstance(bumps, list | tuple) else ():
        if isinstance(bump, Mapping):
            found += advisory_ids(bump.get("advisories"))
    return found


def _check_line(result: CheckResult) -> str:
    outcome = "skipped" if result.skipped else ("passed" if result.passed else "FAILED")
    evidence = f", evidence {result.evidence_name}" if result.evidence_name else ""
    return f"- {result.check}: {outcome} ({len(result.findings)} finding(s){evidence})"


def plan_of_checks(contents: PackageContents) -> str:
    """The checks the factory ran in the sandbox, and their outcome in the last round."""
    lines = [
        f"Automated checks, run in an isolated sandbox without network "
        f"(round {contents.rounds} of the run):",
        *(_check_line(result) for result in contents.results),
        f"- {changed_coverage_of(contents.results).summary_line()} (evidence coverage.json)",
    ]
    return "\n".join(lines) + "\n\nThe reviewer verifies the evidence/ folder of the package."


def _justification(contents: PackageContents) -> str:
    run, trigger = contents.run, contents.trigger
    caused = f", caused by {trigger.caused_by}" if trigger.caused_by else ""
    parts = [
        f"Requested on behalf of user:{run.sponsor}{caused}, through the {trigger.source} "
        f"trigger {run.trigger_id}."
    ]
    advisories = _fixed_advisories(contents)
    if advisories:
        parts.append(f"Fixes published advisories: {', '.join(advisories)}.")
    parts.append(contents.proposal.rationale)
    cited = [f"{source.get('source')}:{source.get('id')}" for source in contents.sources]
    if cited:
        parts.append(f"Context cited: {', '.join(cited)}.")
    return " ".join(part for part in parts if part)


def _recommendation(risk: RiskAssessment, standard: bool) -> str:
    if standard:
        return "Standard change from a pre-approved recipe: peer review, no CAB."
    if risk.level == "high":
        return "CAB review required: " + "; ".join(risk.factors)
    return "Normal change: approval by a reviewer independent of the sponsor."


def cab_record(contents: PackageContents, risk: RiskAssessment, backout: str) -> dict[str, Any]:
    """The `cab.json` of a package: a ServiceNow `change_request` ready to be filed."""
    run, trigger, proposal = contents.run, contents.trigger, contents.proposal
    standard = risk.level == "low" and is_recipe(proposal.engine)
    impact = IMPACT_BY_RISK[risk.level]
    urgency = "2" if _fixed_advisories(contents) else "3"
    return {
        "type": "standard" if standard else "normal",
        "short_description": f"[{run.kind.value}] {one_line(trigger.title)}"[
            :SHORT_DESCRIPTION_MAX
        ],
        "description": trigger.body,
        "justification": _justification(contents),
        "risk": risk.level,
        "impact": impact,
        "urgency": urgency,
        "priority": PRIORITY[(impact, urgency)],
        "risk_impact_analysis": "\n".join(f"- {factor}" for factor in risk.factors),
        "implementation_plan": (
            f"Merge branch {contents.branch} (commit {contents.commit}) into the target "
            f"branch of {run.repository} after approval in Code Factory "
            f"(`codefactory review approve {run.id} --as <reviewer> --key <their SSH key>`)."
        ),
        "backout_plan": backout,
        "test_plan": plan_of_checks(contents),
        "start_date": None,
        "end_date": None,
        "assignment_group": "",
        "assigned_to": "",
        "requested_by": run.sponsor,
        "cmdb_ci": run.repository,
        "business_service": "",
        "cab_required": risk.level == "high",
        "cab_recommendation": _recommendation(risk, standard),
        "close_code": "",
        "close_notes": "",
        "state": STATE_NEW,
        "u_codefactory": {
            "run_id": run.id,
            "agent_id": run.agent_id,
            "engine": proposal.engine,
            "engine_version": proposal.engine_version,
            "branch": contents.branch,
            "commit": contents.commit,
            "base_commit": run.base_commit,
            "trigger": f"{trigger.source}:{run.trigger_id}",
            "caused_by": trigger.caused_by,
            "rounds": contents.rounds,
            "risk_score": risk.score,
        },
    }
