"""One run through the loop: authorize → provision → context → propose ⇄ verify → package.

The loop talks only to ports (policy, sandbox, connectors, engines, checks, forge, package
builder) and the store; every state it reaches is written with its audit event in one
transaction. Any failure, expected or not, ends the run `failed` with the reason stored; a
ticket that needs no change (the engine raises `NothingToDo` before its first change) ends
`no_change` with the engine's reason. The repository is named by its canonical id
(`run.repository`) everywhere; its local checkout (`run.repository_path`) is only read.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from codefactory.audit.events import (
    AgentRefused,
    CommitCreated,
    CommitRequested,
    ContextGathered,
    EngineProposed,
    EngineRefused,
    EngineWithoutModel,
    FindingWaived,
    PackageSetAside,
    ScopeChecked,
    SetupRerun,
    typed,
)
from codefactory.audit.events import (
    NoChangeNeeded as NoChangeNeededEvent,
)
from codefactory.config import RunSettings
from codefactory.context.gather import Gathered, gather_for_ticket
from codefactory.context.port import ContextEngine
from codefactory.domain import (
    RESUMABLE_STATES,
    Change,
    ChangePackage,
    CheckResult,
    Proposal,
    Run,
    RunState,
    Task,
    TriggerEvent,
)
from codefactory.engines.errors import EngineError, NothingToDo
from codefactory.engines.port import Engine
from codefactory.engines.session import EngineSession
from codefactory.identity.errors import AgentUnavailable, IdentityError
from codefactory.identity.port import AgentDirectory, Delegation
from codefactory.package.errors import PackageExists
from codefactory.package.port import PackageBuilder, PackageContents
from codefactory.policy.paths import repository_entity
from codefactory.policy.port import PolicyEngine
from codefactory.policy.scope import (
    change_context,
    check_change_scope,
    principal_of,
    repository_of,
    run_context,
)
from codefactory.review.port import Forge
from codefactory.runs.created import created_mismatch
from codefactory.runs.delegated import DelegatedPackager, DelegatedSessions
from codefactory.runs.engine_ports import EngineClearance, EngineSessions
from codefactory.runs.errors import RunFailed as RunFailed
from codefactory.runs.evidence import change_digest, failing_summary, write_round_evidence
from codefactory.runs.rounds_budget import BudgetedEngine, rounds_cap
from codefactory.sandbox.errors import SandboxError
from codefactory.sandbox.port import Sandbox, Workspace
from codefactory.store.port import RunRepository
from codefactory.triggers.text import one_line
from codefactory.verify.port import ChangeGate

RunObserver = Callable[[str, RunState, str], None]
"""Called after every transition with the run id, the new state and its reason."""

SetupPhase = Callable[[Workspace], list[str]]
DependencyFilter = Callable[[list[str]], list[str]]


class NoChangeNeeded(Exception):
    """Ends the run `no_change`: the ticket asks for nothing the repository still needs."""

    def __init__(self, engine: str, reason: str) -> None:
        super().__init__(reason)
        self.engine = engine
        self.reason = reason


@dataclass(frozen=True, kw_only=True)
class Verified:
    """What the rounds produced when the change passed every check."""

    proposal: Proposal
    change: Change
    results: tuple[CheckResult, ...]
    rounds: int
    sources: tuple[dict[str, Any], ...] = ()
    """The context the engine was given, cited in the package (`Task.sources`)."""


class RunLoop:
    """Drives runs through the state machine; one instance serves many runs."""

    def __init__(
        self,
        *,
        store: RunRepository,
        policy: PolicyEngine,
        agents: AgentDirectory,
        sandbox: Sandbox,
        setup: SetupPhase,
        dependency_files: DependencyFilter,
        context: ContextEngine | None,
        engines: Mapping[str, Engine],
        gate: ChangeGate,
        forge: Forge,
        packager: PackageBuilder,
        budget: RunSettings,
        evidence_dir: Path,
        observer: RunObserver | None = None,
        delegation: Delegation | None = None,
        default_engines: Mapping[str, str] | None = None,
        clearance: EngineClearance | None = None,
        sessions: EngineSessions | None = None,
        repository_data_class: str = "internal",
        context_token_budget: int = 6000,
        after_packaging: Callable[[Run, Path], None] | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.agents = agents
        self.sandbox = sandbox
        self.setup = setup
        self.dependency_files = dependency_files
        self.context = context
        self.repository_data_class = repository_data_class
        self.context_token_budget = context_token_budget
        self.after_packaging = after_packaging
        """Called with the packaged run and its package folder (filing its change request);
        it records its own outcome and never raises."""
        self.engines = engines
        self.gate = gate
        self.forge = forge
        self.packager = packager
        self.budget = budget
        self.evidence_dir = evidence_dir
        self.observer = observer
        self.delegation = delegation
        self.default_engines = dict(default_engines or {})
        self.clearance = clearance
        self.sessions = sessions

    def engine_name(self, kind: str, requested: str = "") -> str:
        """The engine a run of `kind` is given: the one asked for (policy and the registry
        still decide), else the factory's default for the kind, else the one installed."""
        if requested:
            return requested
        if kind in self.default_engines:
            return self.default_engines[kind]
        installed = self.engines.get(kind)
        return installed.name if installed is not None else ""

    def submit(
        self,
        event: TriggerEvent,
        *,
        sponsor: str,
        agent_id: str,
        engine: str = "",
        repository_path: str = "",
    ) -> str:
        """Store the trigger and a new run in `received`, atomically; returns the run id.
        `event.repository` is the canonical id, `repository_path` the local checkout the run
        reads. `engine` is the registry name asked for (`trigger --engine`); empty: the
        default."""
        with self.store.atomic() as tx:
            trigger_id = tx.record_trigger(event)
            run_id = tx.create_run(
                trigger_id=trigger_id,
                event=event,
                sponsor=sponsor,
                agent_id=agent_id,
                engine=self.engine_name(event.kind.value, engine),
                repository_path=repository_path,
            )
        self._notify(run_id, RunState.RECEIVED, "")
        return run_id

    def authorize(self, run_id: str) -> Run:
        """Policy's first check on a `received` run (intake); returns the stored run."""
        run = self.store.require_run(run_id)
        trigger = self.store.get_trigger(run.trigger_id)
        if run.state is RunState.RECEIVED and trigger is not None:
            try:
                self._authorize(run, trigger)
            except AgentUnavailable as err:
                self._fail(run_id, str(err))
        return self.store.require_run(run_id)

    def execute(self, run_id: str, *, repo: Path | None = None) -> Run:
        """Drive a run from its last recorded state until it rests in review or ends;
        returns the stored run. `received` is authorized first; a run a stopped worker left
        in a workspace state (`RESUMABLE_STATES`) is provisioned again and resumed; one left
        `packaged` finishes its hand-over to review; a resting or ended run is returned as
        it is. The run reads the checkout it stored (`run.repository_path`); `repo` serves
        only a run stored without one."""
        run = self.store.require_run(run_id)
        trigger = self.store.get_trigger(run.trigger_id)
        if trigger is None:  # a foreign key makes this impossible short of a corrupt store
            self._fail(run_id, f"the trigger {run.trigger_id} of this run is missing")
            return self.store.require_run(run_id)
        workspace: Workspace | None = None
        resumed_from: RunState | None = None
        try:
            if run.state is RunState.RECEIVED:
                if not self._authorize(run, trigger):
                    return self.store.require_run(run_id)
            elif run.state is RunState.PACKAGED:
                self._into_review(self.store.require_run(run_id))
                return self.store.require_run(run_id)
            elif run.state in RESUMABLE_STATES:
                resumed_from = run.state
            elif run.state is not RunState.AUTHORIZED:
                return run
            if run.state is not RunState.RECEIVED:  # picked up, or taken over: check again
                self._still_cleared(run)
            checkout = self._checkout(run, repo)
            workspace = self._provision(run, checkout, resumed_from=resumed_from)
            task = self._gather_context(run, trigger, workspace)
            verified = self._propose_and_verify(run, task, workspace, checkout)
            self._package(run, trigger, checkout, workspace, verified)
        except NoChangeNeeded as done:
            self._end_unchanged(run_id, done)
        except (RunFailed, SandboxError, EngineError, IdentityError) as err:
            self._fail(run_id, str(err))
        except Exception as err:  # noqa: BLE001 - a crash must still end the run, with its cause
            self._fail(run_id, f"internal error: {type(err).__name__}: {err}")
        finally:
            if self.sessions is not None:
                self.sessions.close(run)
            if self.context is not None:
                self.context.close(run.id)
            if workspace is not None:
                workspace.destroy()
        return self.store.require_run(run_id)

    def _still_cleared(self, run: Run) -> None:
        """Before a run authorized earlier goes on (a worker picking it up, a takeover): its
        row still names the agent, engine and kind of its `run-created` event, it names an
        engine (not one this worker's settings would pick now), and the engine registry
        still clears that engine now (suspended, overdue, narrowed since). RunFailed
        otherwise, a refused engine audited as `engine-refused`."""
        mismatch = created_mismatch(self.store, run)
        if mismatch is not None:
            raise RunFailed(mismatch)
        if not run.engine:  # neither the registry nor policy judged one: none is run for it
            raise RunFailed(
                f"run {run.id} names no engine: it was authorized without one, and this "
                "worker's default for its kind was never cleared for it"
            )
        engine = run.engine
        refusal = self.engine_refusal(run, engine)
        if refusal is not None:
            self.store.append(
                EngineRefused(actor="registry", run_id=run.id, engine=engine, reason=refusal)
            )
            raise RunFailed(f"the engine registry no longer clears {engine}: {refusal}")

    @staticmethod
    def _checkout(run: Run, given: Path | None) -> Path:
        """The local checkout the run reads: the stored one, else the one given."""
        if run.repository_path:
            return Path(run.repository_path)
        if given is None:
            raise RunFailed(f"run {run.id} records no local checkout of {run.repository}")
        return given

    def _end_unchanged(self, run_id: str, done: NoChangeNeeded) -> None:
        """End the run `no_change` with the engine's reason, audited as its own fact."""
        reason = f"no change needed: {done.reason}"
        with self.store.atomic() as tx:
            tx.append(NoChangeNeededEvent( actor="factory", run_id=run_id, engine=done.engine,
                     reason=done.reason))  # fmt: skip
            tx.transition(run_id, RunState.NO_CHANGE, reason=reason)
        self._notify(run_id, RunState.NO_CHANGE, reason)

    def _notify(self, run_id: str, state: RunState, reason: str) -> None:
        if self.observer is not None:
            self.observer(run_id, state, reason)

    def _move(self, run_id: str, state: RunState, reason: str = "", **updates: str) -> None:
        with self.store.atomic() as tx:
            tx.transition(run_id, state, reason=reason, **updates)
        self._notify(run_id, state, reason)

    def fail(self, run_id: str, reason: str) -> None:
        """End a run that is not over `failed` with `reason` (a dispatcher giving up on it)."""
        self._fail(run_id, reason)

    def _fail(self, run_id: str, reason: str) -> None:
        run = self.store.get_run(run_id)
        if run is None or run.state.is_terminal:
            return
        self._move(run_id, RunState.FAILED, reason)

    def _authorize(self, run: Run, trigger: TriggerEvent) -> bool:
        try:
            agent = self.agents.require_active(run.agent_id)
        except AgentUnavailable as err:  # a suspended or revoked agent never starts a run
            with self.store.atomic() as tx:
                tx.append(AgentRefused(actor="identity", run_id=run.id, reason=str(err)))
                tx.transition(run.id, RunState.REFUSED, reason=str(err), actor="identity")
            self._notify(run.id, RunState.REFUSED, str(err))
            return False
        engine = self._engine_of(run)
        refusal = self.engine_refusal(run, engine)
        if refusal is not None:  # an engine the registry has not cleared never starts
            with self.store.atomic() as tx:
                tx.append(
                    EngineRefused(actor="registry", run_id=run.id, engine=engine, reason=refusal)
                )
                tx.transition(run.id, RunState.REFUSED, reason=refusal, actor="registry")
            self._notify(run.id, RunState.REFUSED, refusal)
            return False
        decision = self.policy.authorize(
            principal=f'TriggerSource::"{trigger.source}"',
            action=f'Action::"{run.kind.value}"',
            resource=str(repository_of(run)),
            entities=[repository_entity(run.repository)],
            context=run_context(
                run,
                trigger,
                agent=agent.id,
                engine=engine,
                now=datetime.now(UTC),
            ),
        )
        with self.store.atomic() as tx:
            tx.record_decision(run.id, stage="intake", action=run.kind.value, decision=decision)
            state = RunState.AUTHORIZED if decision.allowed else RunState.REFUSED
            tx.transition(run.id, state, reason=decision.summary, actor="policy")
            if decision.allowed and self.delegation is not None:
                self.delegation.issue(run, agent, session=tx.session)
        self._notify(run.id, state, decision.summary)
        return decision.allowed

    def _provision(
        self, run: Run, repo: Path, *, resumed_from: RunState | None = None
    ) -> Workspace:
        try:
            # an image's setup phase runs inside provisioning
            workspace = self.sandbox.provision(repo=repo, commit="HEAD", run_id=run.id)
        except BaseException as err:
            self._keep_setup_log(run.id, err)
            raise
        try:
            installed = self.setup(workspace)
        except BaseException as err:
            workspace.destroy()
            self._keep_setup_log(run.id, err)
            raise
        reason = f"dependencies installed from {', '.join(installed) or 'nothing'}"
        if resumed_from is not None:
            reason = (
                f"resumed from `{resumed_from.value}` in a new workspace (the worker that "
                f"drove it stopped); {reason}"
            )
        self._move(run.id, RunState.PROVISIONED, reason, base_commit=workspace.base_commit)
        return workspace

    def _keep_setup_log(self, run_id: str, err: BaseException) -> None:
        """A failed setup phase's whole log (`SetupStepFailed.log`; the run's reason carries
        only its tail) kept as `evidence/<run>/setup.log`."""
        log = getattr(err, "log", None)
        if isinstance(log, str) and log:
            folder = self.evidence_dir / run_id
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "setup.log").write_text(log, encoding="utf-8")

    def _gather_context(self, run: Run, trigger: TriggerEvent, workspace: Workspace) -> Task:
        task, gathered = self.task_for(run, trigger, workspace)
        with self.store.atomic() as tx:
            tx.append(
                ContextGathered(
                    actor=run.agent_id,
                    run_id=run.id,
                    items=list(task.context),
                    left_out=list(gathered.left_out),
                    failures=list(gathered.failures),
                    budget_tokens=self.context_token_budget,
                )
            )
            tx.transition(
                run.id, RunState.CONTEXT_READY, reason=f"{len(gathered.items)} context items"
            )
        self._notify(run.id, RunState.CONTEXT_READY, "")
        return task

    def task_for(
        self, run: Run, trigger: TriggerEvent, workspace: Workspace
    ) -> tuple[Task, Gathered]:
        """The engine's task: the ticket's title and body masked with the run's pseudonyms,
        and what the ticket points at, gathered through the run's governed connectors (each
        read a `context-read` audit event of its own) within the token budget."""
        if self.context is None:
            return Task(kind=run.kind, title=trigger.title, body=trigger.body), Gathered()
        sources = self.context.open(run, self._engine_of(run), workspace)
        gathered = gather_for_ticket(
            trigger,
            sources.for_reader("loop"),
            token_budget=self.context_token_budget,
            mask=sources.mask,
        )
        task = Task(
            kind=run.kind,
            title=sources.mask(trigger.title),
            body=sources.mask(trigger.body),
            context=gathered.task_context(),
            sources=tuple(gathered.citations()),
        )
        return task, gathered

    def _engine_of(self, run: Run) -> str:
        """The run's engine name (runs stored before engines were recorded: the default)."""
        return run.engine or self.engine_name(run.kind.value)

    def engine_refusal(self, run: Run, engine: str, *, now: datetime | None = None) -> str | None:
        """Why the engine registry does not clear `engine` for `run` at `now` (default: the
        current time), or None when it does or the loop has no registry."""
        if not engine or self.clearance is None:
            return None  # no engine for the kind: policy decides, then the run fails if allowed
        return self.clearance.refusal(
            engine,
            kind=run.kind,
            repository=run.repository,
            data_class=self.repository_data_class,
            now=now or datetime.now(UTC),
        )

    def engine_for(self, run: Run) -> Engine:
        """The installed engine of the run's registry name: installed under that name, or
        under the run's kind when it bears that name (a recipe). Never another engine than
        the one the registry cleared and policy saw: RunFailed when none is installed."""
        name = self._engine_of(run)
        engine = self.engines.get(name)
        if engine is None:
            by_kind = self.engines.get(run.kind.value)
            engine = by_kind if by_kind is not None and by_kind.name == name else None
        if engine is None:
            raise RunFailed(f"the engine {name or '(none)'} is not installed in this factory")
        return engine

    def max_rounds(self, engine: str) -> int:
        """The factory's rounds cap, lowered by the registry's for `engine`."""
        cap = self.clearance.max_rounds(engine) if self.clearance is not None else None
        return rounds_cap(self.budget.max_rounds, cap)

    def _propose_and_verify(
        self, run: Run, task: Task, workspace: Workspace, repo: Path
    ) -> Verified:
        inner = self.engine_for(run)
        # Wrapped for this run: the rounds budget refuses a round past the cap, and each
        # round's session opens only for an act the run's delegation allows.
        started = sum(1 for change in run.history if change.state is RunState.PROPOSING)
        engine = BudgetedEngine(
            inner,
            max_rounds=self.max_rounds(inner.name),
            evidence=self.evidence_dir / run.id,
            spent=started,  # rounds a worker that stopped began: the budget is the run's
        )
        sessions = DelegatedSessions(self.sessions, agents=self.agents, delegation=self.delegation)
        feedback: list[CheckResult] = []
        while True:
            round_number = engine.next_round(feedback)  # RunFailed once the budget is spent
            self._move(run.id, RunState.PROPOSING, f"round {round_number} with {engine.name}")
            session = sessions.open(run, engine.name, round_number=round_number)
            before = sessions.model_requests(run)
            try:
                proposal = engine.propose(task, workspace, feedback, session)
            except EngineError as err:
                # Nothing to do before any change of its own: the ticket needs none. After
                # a change the checks refused, nothing more to do is a failure.
                if isinstance(err, NothingToDo) and not feedback:
                    if workspace.changes().is_empty:
                        raise NoChangeNeeded(engine.name, str(err)) from err
                if not feedback:
                    raise
                raise RunFailed(
                    f"checks still failing after round {round_number - 1}: "
                    f"{failing_summary(feedback)}; the engine could not do better: {err} "
                    f"(evidence in {self.evidence_dir / run.id})"
                ) from err
            self._require_model_traffic(run, engine.name, session, before, round_number)
            change = workspace.changes()
            with self.store.atomic() as tx:
                tx.append(
                    EngineProposed(
                        actor=run.agent_id,
                        run_id=run.id,
                        round=round_number,
                        engine=engine.name,
                        engine_version=engine.version,
                        rationale=proposal.rationale,
                        paths=list(change.paths),
                        change_digest=change_digest(change),
                    )
                )
            if change.is_empty:
                raise RunFailed(f"the engine {engine.name} produced no change")
            self._move(
                run.id, RunState.VERIFYING, f"round {round_number}: {len(change.files)} files"
            )
            results = self._verify(run, workspace, change, round_number, repo)
            if all(result.passed for result in results):
                self._move(run.id, RunState.VERIFIED, f"all checks passed in round {round_number}")
                return Verified(
                    proposal=proposal,
                    change=change,
                    results=tuple(results),
                    rounds=round_number,
                    sources=task.sources,
                )
            feedback = [result for result in results if not result.passed]

    def _require_model_traffic(
        self,
        run: Run,
        engine: str,
        session: EngineSession | None,
        before: int,
        round_number: int,
    ) -> None:
        """A language-model engine's round must have reached its model through the gateway:
        a proposal with no model call there was made by something else (a repository's own
        configuration or code standing in for the model) and is not accepted."""
        if session is None or session.model is None or self.sessions is None:
            return
        if self.sessions.model_requests(run) > before:
            return
        with self.store.atomic() as tx:
            tx.append(
                EngineWithoutModel(
                    actor="factory",
                    run_id=run.id,
                    engine=engine,
                    round=round_number,
                )
            )
        raise RunFailed(
            f"round {round_number}: the engine {engine} proposed a change without a single "
            "model call through the gateway; a change no cleared model made is not accepted"
        )

    def _verify(
        self, run: Run, workspace: Workspace, change: Change, round_number: int, repo: Path
    ) -> list[CheckResult]:
        edited = self.dependency_files(list(change.paths))
        if edited:
            try:
                installed = self.setup(workspace)
            except BaseException as err:
                self._keep_setup_log(run.id, err)
                raise
            with self.store.atomic() as tx:
                tx.append(
                    SetupRerun(
                        actor="factory",
                        run_id=run.id,
                        edited=edited,
                        installed=installed,
                    )
                )
        results = self.gate.run(
            workspace, change, repo=repo, ticket=self.store.get_trigger(run.trigger_id)
        )
        write_round_evidence(self.evidence_dir / run.id / f"round-{round_number}", results)
        with self.store.atomic() as tx:
            tx.record_checks(run.id, round_number, results)
            for use in self.gate.waivers_applied(results):  # a waiver is an audited fact
                tx.append(FindingWaived(actor=use.actor, run_id=run.id, **use.as_event()))
        return results

    def _package(
        self,
        run: Run,
        trigger: TriggerEvent,
        repo: Path,
        workspace: Workspace,
        verified: Verified,
    ) -> None:
        if not self._within_scope(run, trigger, verified):
            return
        agent = self.agents.require_active(run.agent_id)
        branch = f"factory/{run.id}"
        # Checked here, not in a wrapper around the forge: the `commit-requested` event the
        # commit message cites comes before `open_change`, and is written only for an act the
        # token allows.
        if self.delegation is not None:
            self.delegation.check(run, action="forge:commit", paths=verified.change.paths)
        index = self._commit_request(run, branch, workspace.base_commit, verified.change)
        commit = self.forge.open_change(
            repo=repo,
            repository=run.repository,
            base_commit=workspace.base_commit,
            branch=branch,
            change=verified.change,
            message=commit_message(run, trigger, verified.proposal, audit_index=index),
            author_name=agent.display_name,
            author_email=agent.email,
        )
        with self.store.atomic() as tx:
            tx.append(
                CommitCreated(
                    actor=run.agent_id,
                    run_id=run.id,
                    commit=commit,
                    branch=branch,
                    audit_index=index,
                )
            )
        patch = self.forge.diff(
            repository=run.repository, base_commit=workspace.base_commit, head_commit=commit
        )
        current = self.store.require_run(run.id)
        packager = self.packager
        if self.delegation is not None:  # the token must allow `package:sign`
            packager = DelegatedPackager(self.packager, delegation=self.delegation)
        package = self._build_package(
            packager,
            PackageContents(
                run=current,
                trigger=trigger,
                proposal=verified.proposal,
                results=verified.results,
                rounds=verified.rounds,
                patch=patch,
                commit=commit,
                branch=branch,
                forge_repository=str(self.forge.repository_path(run.repository)),
                change=verified.change,
                sources=verified.sources,
            ),
        )
        with self.store.atomic() as tx:
            tx.record_package(package)
            tx.transition(
                run.id,
                RunState.PACKAGED,
                reason=f"risk {package.risk_level}; {len(package.files)} files in the package",
                head_commit=commit,
                branch=branch,
                package_dir=str(package.directory),
            )
        self._notify(run.id, RunState.PACKAGED, "")
        self._into_review(self.store.require_run(run.id))

    def _into_review(self, run: Run) -> None:
        """A `packaged` run's hand-over to review: the after-packaging hooks (each
        recognises what it did already when a stopped worker's run is resumed here), then
        `in_review`."""
        if self.after_packaging is not None:
            self.after_packaging(run, Path(run.package_dir))
        self._move(run.id, RunState.IN_REVIEW, f"awaiting a reviewer other than {run.sponsor}")

    def _commit_request(self, run: Run, branch: str, base_commit: str, change: Change) -> int:
        """The audit index of the run's `commit-requested` event for this branch, base and
        paths: the one a stopped worker already wrote (so the resumed commit, same change,
        is the same commit, which the forge recognises), else a new one."""
        paths = list(change.paths)
        for record in reversed(self.store.audit_events(run.id)):
            match typed(record):
                case CommitRequested(branch=found) if found == branch:
                    asked = (record.data["base_commit"], record.data["paths"])
                    if asked == (base_commit, paths):
                        return record.seq
                    break
        with self.store.atomic() as tx:
            return tx.append(
                CommitRequested(
                    actor=run.agent_id,
                    run_id=run.id,
                    branch=branch,
                    base_commit=base_commit,
                    paths=paths,
                )
            )

    def _build_package(self, packager: PackageBuilder, contents: PackageContents) -> ChangePackage:
        """Build the run's package. A folder a stopped worker wrote but never recorded (the
        run has no package yet) is set aside as `.<run>.unrecorded-<n>`, audited
        `package-set-aside`, and the package is built again: packages are never rewritten.
        The set-aside happens inside a transaction, so only the lease holder moves anything
        (a worker whose lease was taken over stops with `LeaseLost`), and never a package
        the store records."""
        try:
            return packager.build(contents)
        except PackageExists as exists:
            run_id = contents.run.id
            target = exists.directory
            aside = target.with_name(f".{run_id}.unrecorded-{secrets.token_hex(3)}")
            with self.store.atomic() as tx:
                if self.store.require_run(run_id).package_dir:
                    raise RunFailed(
                        f"the package of run {run_id} was already recorded at {target}"
                    ) from exists
                tx.append(
                    PackageSetAside(
                        actor="factory",
                        run_id=run_id,
                        directory=str(target),
                        moved_to=str(aside),
                        reason="written by a worker that stopped before recording it",
                    )
                )
                target.rename(aside)
            return packager.build(contents)

    def _within_scope(self, run: Run, trigger: TriggerEvent, verified: Verified) -> bool:
        """Policy's second check, on the actual diff: outside the scope, the run is refused."""
        agent = self.agents.require_active(run.agent_id)
        risk = self.packager.risk_level(verified.change, run.kind, verified.results)
        context = run_context(
            run, trigger, agent=agent.id, engine=verified.proposal.engine, now=datetime.now(UTC)
        )
        scope = check_change_scope(
            self.policy,
            principal=principal_of(trigger),
            repository=repository_of(run),
            change=verified.change,
            context={**context, **change_context(verified.change, risk=risk)},
        )
        decision = scope.decision
        with self.store.atomic() as tx:
            tx.record_decision(run.id, stage="packaging", action=scope.delivery, decision=decision)
            tx.append(ScopeChecked(actor="policy", run_id=run.id, **scope.audit_data()))
            if not scope.allowed:
                tx.transition(run.id, RunState.REFUSED, reason=decision.summary, actor="policy")
        if not scope.allowed:
            self._notify(run.id, RunState.REFUSED, decision.summary)
        return scope.allowed


def commit_message(
    run: Run, trigger: TriggerEvent, proposal: Proposal, *, audit_index: int | None = None
) -> str:
    """The agent's commit message: the checked ticket title as the subject, the engine's
    rationale, then trailers built only from the factory's own values (agent id, the
    sponsor's directory person id, run id, audit log index of the `commit-requested` event,
    the stored trigger id, the engine), never from payload text, so a newline in a ticket
    key or title cannot add an `On-Behalf-Of:` or `Reviewed-by:` trailer."""
    trailers = {
        "Agent-Id": run.agent_id,
        "On-Behalf-Of": run.sponsor,
        "Run-Id": run.id,
        "Audit-Index": "" if audit_index is None else str(audit_index),
        "Ticket": f"{trigger.source}:{run.trigger_id}",
        "Assisted-by": f"{proposal.engine}:{proposal.engine_version}",
    }
    lines = "".join(f"{key}: {one_line(value)}\n" for key, value in trailers.items() if value)
    return f"{one_line(trigger.title)}\n\n{proposal.rationale}\n\n{lines}"
