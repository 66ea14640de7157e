"""`runs replay`: re-execute a finished run against its recorded model traffic.

The gateway kept every exchange of the run as a vcrpy cassette; a factory whose gateway
upstream is that cassette (`replay:PATH`) runs the same engine on the same ticket, in a fresh
sandbox at the run's base commit, for as many rounds as the original took, and reports
whether it produced the same diff and the same check verdicts. Nothing is committed to the
run's branch and no new run is created: the rehearsal's own id (`<run>-replay-<n>`) names its
audit events, its gateway grant and its evidence.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from codefactory.audit.events import (
    AgentRefused,
    EngineProposed,
    EngineRefused,
    ModelCalled,
    RunReplayed,
    RunReplayStarted,
    typed,
)
from codefactory.domain import Change, CheckResult, Run, RunState
from codefactory.identity.errors import AgentUnavailable
from codefactory.runs.created import created_mismatch
from codefactory.runs.errors import RunFailed
from codefactory.runs.evidence import change_digest
from codefactory.runs.loop import RunLoop
from codefactory.store.port import RunRepository


class ReplayImpossible(Exception):
    """The run cannot be replayed (no recorded traffic, no base commit, still running, its
    engine or agent no longer cleared)."""


@dataclass(frozen=True, kw_only=True)
class RoundVerdicts:
    """One round's check verdicts: check name → passed."""

    round: int
    checks: dict[str, bool]


@dataclass(frozen=True, kw_only=True)
class ReplayReport:
    """What the replay produced beside what the original run recorded."""

    run_id: str
    replay_id: str
    engine: str
    base_commit: str
    original_change: dict[str, str]
    """Path → SHA-256 of its content after the change ("deleted" for a removal)."""
    replayed_change: dict[str, str]
    original_checks: list[RoundVerdicts]
    replayed_checks: list[RoundVerdicts]
    error: str = ""
    """Why the replay stopped early (the engine failed, traffic ran out), if it did."""
    notes: list[str] = field(default_factory=list)

    @property
    def same_diff(self) -> bool:
        return not self.error and self.original_change == self.replayed_change

    @property
    def same_checks(self) -> bool:
        return not self.error and self.original_checks == self.replayed_checks

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "replay_id": self.replay_id,
            "engine": self.engine,
            "base_commit": self.base_commit,
            "same_diff": self.same_diff,
            "same_checks": self.same_checks,
            "original_change": self.original_change,
            "replayed_change": self.replayed_change,
            "original_checks": [vars(r) for r in self.original_checks],
            "replayed_checks": [vars(r) for r in self.replayed_checks],
            "error": self.error,
            "notes": self.notes,
        }


def cassette_of(traffic_dir: Path, run: Run) -> Path:
    """The run's recorded traffic; ReplayImpossible when there is none to replay."""
    if not run.state.is_terminal and run.state is not RunState.IN_REVIEW:
        raise ReplayImpossible(f"run {run.id} is still {run.state.value}: replay a finished run")
    if not run.base_commit:
        raise ReplayImpossible(f"run {run.id} never reached a workspace: nothing to replay")
    cassette = traffic_dir / f"{run.id}.yaml"
    if not cassette.is_file():
        raise ReplayImpossible(
            f"run {run.id} has no recorded model traffic ({cassette}): its engine "
            f"{run.engine or '(recipe)'} made no model call"
        )
    return cassette


def verify_cassette(
    store: RunRepository, run: Run, cassette: Path, *, copy_to: Path | None = None
) -> int:
    """Check the cassette against the run's audited `model-called` records, exchange by
    exchange (the SHA-256 of each request and response body, the method and the status, in
    order); returns how many exchanges it holds. With `copy_to`, the bytes that were checked
    are written there, so the replay serves exactly them. Raises ReplayImpossible when they
    differ: the audit log, not a file beside it, is the record of what the model said."""
    try:
        raw = cassette.read_bytes()
        document = yaml.safe_load(raw.decode("utf-8"))
        exchanges = [
            (
                str(i["request"]["method"]).upper(),
                int(i["response"]["status"]["code"]),
                _bytes(i["request"]["body"]),
                _bytes(i["response"]["body"]["string"]),
            )
            for i in document["interactions"]
        ]
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError, ValueError) as err:
        raise ReplayImpossible(f"the cassette {cassette} cannot be read: {err}") from err
    audited = [
        e
        for e in map(typed, store.audit_events(run.id))
        if isinstance(e, ModelCalled) and e.attempt >= 1
    ]
    if len(audited) != len(exchanges):
        raise ReplayImpossible(
            f"the cassette {cassette} holds {len(exchanges)} exchanges; the audit log records "
            f"{len(audited)}: it is not the run's recorded traffic"
        )
    for number, (exchange, record) in enumerate(zip(exchanges, audited, strict=True)):
        method, status, request, response = exchange
        if (
            method != record.method.upper()
            or status != record.status
            or hashlib.sha256(request).hexdigest() != record.request_sha256
            or hashlib.sha256(response).hexdigest() != record.response_sha256
        ):
            raise ReplayImpossible(
                f"exchange {number + 1} of the cassette {cassette} differs from the audited "
                "record of the run's model traffic: it was altered"
            )
    if copy_to is not None:
        copy_to.write_bytes(raw)
    return len(exchanges)


def _bytes(body: object) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8", "surrogateescape")
    if body is None:
        return b""
    raise TypeError(f"a body is text or bytes, not {type(body).__name__}")


def as_created(store: RunRepository, run: Run) -> None:
    """Check that `run` (its stored row) names the agent, engine and kind its `run-created`
    event recorded (`runs.created`): the audit log, not the row, says what the run was.
    ReplayImpossible when it does not."""
    mismatch = created_mismatch(store, run)
    if mismatch is not None:
        raise ReplayImpossible(mismatch)


def recorded_checks(store: RunRepository, run_id: str) -> list[RoundVerdicts]:
    """The check verdicts the original run stored, round by round."""
    rounds: dict[int, dict[str, bool]] = {}
    for check in store.check_runs(run_id):
        rounds.setdefault(int(check["round"]), {})[str(check["check"])] = bool(check["passed"])
    return [RoundVerdicts(round=n, checks=rounds[n]) for n in sorted(rounds)]


def recorded_change(store: RunRepository, run_id: str) -> dict[str, str]:
    """The last round's change of the original run, from its `engine-proposed` event."""
    proposed = [e for e in map(typed, store.audit_events(run_id)) if isinstance(e, EngineProposed)]
    if not proposed:
        return {}
    return dict(proposed[-1].change_digest)


def replay_run(loop: RunLoop, run: Run, *, now: datetime | None = None) -> ReplayReport:
    """Re-run `run`'s engine against the loop's gateway upstream (the run's cassette), round
    for round, and compare. The loop must be one whose gateway replays that cassette.

    The engine runs again, so it must be cleared now as a new run's would be: ReplayImpossible,
    before any workspace, when the engine registry does not clear it for the run at `now`
    (default: the current time; revoked, review overdue, not for this repository) or when the
    run's agent is suspended or revoked."""
    store = loop.store
    trigger = store.get_trigger(run.trigger_id)
    if trigger is None:
        raise ReplayImpossible(f"the trigger of run {run.id} is missing")
    original_checks = recorded_checks(store, run.id)
    rehearsal = replace(run, id=f"{run.id}-replay-{secrets.token_hex(3)}")
    as_created(store, run)
    try:
        engine = loop.engine_for(run)
    except RunFailed as err:  # not installed here (any more)
        raise ReplayImpossible(f"run {run.id} cannot be replayed: {err}") from err
    refusal = loop.engine_refusal(run, engine.name, now=now)
    if refusal is not None:
        with store.atomic() as tx:  # under the rehearsal's id: the run's history stays whole
            tx.append(
                EngineRefused(
                    actor="registry", run_id=rehearsal.id, engine=engine.name, reason=refusal
                )
            )
        raise ReplayImpossible(f"the engine {engine.name} may not run now: {refusal}")
    try:
        loop.agents.require_active(run.agent_id)
    except AgentUnavailable as err:
        with store.atomic() as tx:
            tx.append(AgentRefused(actor="identity", run_id=rehearsal.id, reason=str(err)))
        raise ReplayImpossible(f"run {run.id} may not be replayed: {err}") from err
    rounds: list[RoundVerdicts] = []
    change = Change(files=())
    error = ""
    if not run.repository_path:
        raise ReplayImpossible(f"run {run.id} records no local checkout of {run.repository}")
    checkout = Path(run.repository_path)
    workspace = loop.sandbox.provision(repo=checkout, commit=run.base_commit, run_id=rehearsal.id)
    try:
        loop.setup(workspace)
        with store.atomic() as tx:
            tx.append(RunReplayStarted(actor="factory", run_id=rehearsal.id, original=run.id))
        task, _ = loop.task_for(rehearsal, trigger, workspace)
        feedback: list[CheckResult] = []
        for number in range(1, max(len(original_checks), 1) + 1):
            session = (
                loop.sessions.open(rehearsal, engine.name, round_number=number)
                if loop.sessions is not None
                else None
            )
            engine.propose(task, workspace, feedback, session)
            change = workspace.changes()
            results = loop.gate.run(workspace, change, repo=checkout, ticket=trigger)
            rounds.append(RoundVerdicts(round=number, checks={r.check: r.passed for r in results}))
            feedback = [r for r in results if not r.passed]
            if not feedback:
                break
    except Exception as err:  # noqa: BLE001 - the report says why the replay stopped
        error = f"{type(err).__name__}: {err}"
    finally:
        if loop.sessions is not None:
            loop.sessions.close(rehearsal)
        if loop.context is not None:
            loop.context.close(rehearsal.id)
        workspace.destroy()
    report = ReplayReport(
        run_id=run.id,
        replay_id=rehearsal.id,
        engine=engine.name,
        base_commit=run.base_commit,
        original_change=recorded_change(store, run.id),
        replayed_change=change_digest(change),
        original_checks=original_checks,
        replayed_checks=rounds,
        error=error,
    )
    with store.atomic() as tx:
        tx.append(
            RunReplayed(
                actor="factory",
                run_id=rehearsal.id,
                original=run.id,
                same_diff=report.same_diff,
                same_checks=report.same_checks,
                error=error,
            )
        )
    return report
