"""The composition root: picks the adapters from settings and wires the loop.

Everything but the settings is imported inside the functions (types only under
TYPE_CHECKING), so `codefactory --help` stays fast and `open_store` (what `runs list` and
`runs show` read through) loads the store alone, not the loop and its adapters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from codefactory.audit.port import ForwardingAuditLog
from codefactory.config import Settings, prepare_data_dir

if TYPE_CHECKING:
    from sqlalchemy import Engine as DatabaseEngine
    from sqlalchemy.orm import Session

    from codefactory.audit.explain import CommitSignature, CommitVerifier
    from codefactory.audit.port import AuditLog, SignedCheckpoint
    from codefactory.context.runs import RunContexts
    from codefactory.domain import (
        AuditEvent,
        CheckResult,
        Proposal,
        Run,
        RunState,
        Task,
        TriggerEvent,
    )
    from codefactory.engines.gateway import ModelGateway
    from codefactory.engines.port import Engine
    from codefactory.engines.session import EngineSession
    from codefactory.identity.agents import AgentIdentity
    from codefactory.identity.services import IdentityServices
    from codefactory.review.port import ForgeHost
    from codefactory.review.reconcile import Reconciler
    from codefactory.runs.cab_gate import CabGate
    from codefactory.runs.loop import RunLoop, RunObserver
    from codefactory.runs.review import ReviewDesk
    from codefactory.sandbox.mirror import Mirrors
    from codefactory.sandbox.port import Workspace
    from codefactory.store.runs import RunStore
    from codefactory.verify.gate import Gate

SHIPPED_ADVISORIES = Path(__file__).parent / "advisories" / "data"


@dataclass(frozen=True, kw_only=True)
class Factory:
    """Everything a command needs: the loop, the review desk, the store and the audit log,
    and the mirrors every host-side git command runs in (never in a source repository)."""

    settings: Settings
    store: RunStore
    audit: AuditLog
    loop: RunLoop
    review: ReviewDesk
    identity: IdentityServices
    mirrors: Mirrors
    gate: Gate
    """The run loop's gate, from which `codefactory verify` derives its own."""
    reconcile: Reconciler | None = None
    """Matches the forge's review and merge events to runs (review/reconcile.py); intake
    is given it (`WebhookIntake(reconciler=...)`)."""


def default_agent(settings: Settings) -> AgentIdentity:
    """The recipe agent of the embedded default, issued by this factory."""
    from codefactory.identity.agents import AgentIdentity

    return AgentIdentity(
        id=settings.agent_id,
        display_name="Code Factory recipe agent",
        issuer=settings.identity.issuer,
        owner="platform-engineering",
        engines=tuple(settings.identity.default_agent_engines),
    )


def language_model_engines(settings: Settings) -> dict[str, Engine]:
    """The in-harness agent and the agent CLIs, by registry name; the registry decides which
    of them may run. Each imports its heavy parts (pydantic-ai: seconds) when it first runs."""
    engines: dict[str, Engine] = {
        "agent:pydantic-ai": LazyEngine("agent:pydantic-ai", _pydantic_ai_agent)
    }
    for name in CLI_ENGINES:
        engines[name] = LazyEngine(name, _cli_engine(name, settings.cache_dir))
    return engines


CLI_ENGINES = ("cli:codex", "cli:claude-code", "cli:mini-swe-agent", "cli:opencode")
"""Agent CLIs this factory can run inside the sandbox (`engines/cli/`)."""


def _cli_engine(name: str, cache_dir: Path) -> Callable[[], Engine]:
    def build() -> Engine:
        from codefactory.engines.cli import cli_engine

        return cli_engine(name, cache_dir)

    return build


def _pydantic_ai_agent() -> Engine:
    from codefactory.engines.agent import PydanticAIAgent

    return PydanticAIAgent()


class LazyEngine:
    """An engine built on its first proposal, so commands that run none stay fast."""

    def __init__(self, name: str, build: Callable[[], Engine]) -> None:
        self.name = name
        self.version = ""
        self._build = build
        self._engine: Engine | None = None

    def propose(
        self,
        task: Task,
        workspace: Workspace,
        feedback: Sequence[CheckResult],
        session: EngineSession | None = None,
    ) -> Proposal:
        """Build the engine if needed, then delegate (`Engine.propose`)."""
        if self._engine is None:
            self._engine = self._build()
            self.version = self._engine.version
        return self._engine.propose(task, workspace, feedback, session)


def model_gateway(
    settings: Settings,
    store: RunStore,
    contexts: RunContexts | None = None,
    halted: Callable[[], str | None] | None = None,
) -> ModelGateway:
    """The model gateway of this factory (started by the first language-model run), whose
    every call (each upstream attempt) becomes a `model-called` audit event of its run.
    With `contexts`, the context engine's MCP endpoint shares its listener at `/mcp`,
    authenticated by the same run credentials."""

    from codefactory.context.mcp_server import context_http_app
    from codefactory.engines.gateway import ModelCall, ModelGateway
    from codefactory.engines.gateway.app import SideApp
    from codefactory.engines.gateway.content_scan import ContentScan
    from codefactory.engines.gateway.grants import GrantTable

    grants = GrantTable()

    def run_of(credential: str) -> str | None:
        found = grants.authenticate([credential])
        return found.grant.run_id if found.grant is not None and not found.refusal else None

    host = settings.gateway.host
    side_apps = (
        [
            SideApp(
                prefixes=("/mcp", "/.well-known/oauth-protected-resource"),
                app=context_http_app(
                    contexts,
                    run_of,
                    public_url=f"https://{host}",
                    hosts=[f"{host}:*", "127.0.0.1:*", "[::1]:*", "localhost:*"],
                ),
            )
        ]
        if contexts is not None
        else []
    )

    def record(call: ModelCall) -> None:
        store.append(call.audit_event())

    return ModelGateway(
        settings.gateway,
        state_dir=settings.data_dir / "gateway",
        traffic_dir=settings.model_traffic_dir,
        on_call=record,
        grants=grants,
        side_apps=side_apps,
        content_scan=ContentScan(settings.context.masking),
        halted=halted,  # every model call refused during a halt (`codefactory halt`)
    )


def notifying(
    settings: Settings,
    store: RunStore,
    identity: IdentityServices,
    observer: RunObserver | None,
) -> RunObserver | None:
    """`observer`, followed by the review notifications when a channel is configured
    (`notify.*`, review/notifications.py) and the Jira ticket's milestones
    (`notify.jira.*`, review/jira_updates.py)."""
    from codefactory.context.credentials import vendor_client
    from codefactory.review.jira_updates import JiraMilestones
    from codefactory.review.notifications import ReviewNotifications, channels

    configured = channels(settings.notify)
    jira = settings.notify.jira.milestones and settings.jira.base_url
    if not configured and not jira:
        return observer

    def trigger_of(run: Run) -> TriggerEvent | None:
        return store.get_trigger(run.trigger_id)

    milestones = (
        JiraMilestones(
            settings=settings.notify.jira,
            client=lambda: vendor_client("jira", settings.jira),
            run_of=store.get_run,
            trigger_of=trigger_of,
            record=store.append,
        )
        if jira
        else None
    )

    notifications = ReviewNotifications(
        channels=configured,
        directory=identity.directory,
        run_of=store.get_run,
        trigger_of=trigger_of,
        record=store.append,
    )

    def observe(run_id: str, state: RunState, reason: str) -> None:
        if observer is not None:
            observer(run_id, state, reason)
        notifications(run_id, state, reason)
        if milestones is not None:
            milestones(run_id, state, reason)

    return observe


def change_filing(settings: Settings, store: RunStore) -> Callable[[Run, Path], None] | None:
    """The hook that files each packaged run's change request in ServiceNow, when
    `changes.file_in_servicenow` is on (review/change_requests.py)."""
    if not settings.changes.file_in_servicenow:
        return None
    from codefactory.context.credentials import vendor_client
    from codefactory.review.change_requests import ChangeFiling, filed_change

    return ChangeFiling(
        settings=settings.changes,
        client=lambda: vendor_client("servicenow", settings.servicenow),
        record=store.append,
        filed_already=lambda run_id: filed_change(store.audit_events(run_id)) is not None,
    )


def forge_publishing(
    settings: Settings, store: RunStore, repository_path: Callable[[str], Path]
) -> Callable[[Run, Path], None] | None:
    """The hook that pushes each packaged run's branch to the forge and opens its draft
    request under the sponsor's token, when `forge.type` is not `local`
    (review/forges/publishing.py); `repository_path` is the local forge's bare repository."""
    host = forge_host_of(settings)
    if host is None:
        return None
    from codefactory.review.forges.grants import UserTokens
    from codefactory.review.forges.publishing import RequestPublishing

    return RequestPublishing(
        forge=settings.forge.type,
        host=host,
        repository_path=repository_path,
        # one holder for every run: its lock lets a single-use refresh token be spent once
        user_token=UserTokens(settings.forge).token_for,
        trigger_of=lambda run: store.get_trigger(run.trigger_id),
        record=store.append,
        base_branch=settings.forge.base_branch,
        hostname=urlsplit(settings.forge.base_url).hostname or "",
        ca_file=settings.forge.ca_file,
    )


def after_packaging(
    *hooks: Callable[[Run, Path], None] | None,
) -> Callable[[Run, Path], None] | None:
    """The hooks that are configured, called in order (each audits and never raises)."""
    chosen = [hook for hook in hooks if hook is not None]
    if len(chosen) <= 1:
        return chosen[0] if chosen else None

    def each(run: Run, package_dir: Path) -> None:
        for hook in chosen:
            hook(run, package_dir)

    return each


def commit_verifier(settings: Settings) -> CommitVerifier:
    """`audit explain`'s reading of a run's commit signature: plain git in the local forge's
    bare repositories (`forge_dir`); a forge error becomes `CommitUnverifiable`."""
    from codefactory.audit.explain import CommitUnverifiable
    from codefactory.review.errors import ForgeError
    from codefactory.review.local_forge import LocalForge

    def verify(repository: str, commit: str, allowed_signers: Path) -> CommitSignature:
        try:
            return LocalForge(settings.forge_dir).verify_commit(repository, commit, allowed_signers)
        except ForgeError as err:
            raise CommitUnverifiable(str(err)) from err

    return verify


def cab_gate(settings: Settings) -> CabGate:
    """The CAB's gate in front of the hand-off (runs/cab_gate.py): on when change requests
    are filed in ServiceNow and `changes.cab_gate` is on."""
    from codefactory.context.credentials import vendor_client
    from codefactory.runs.cab_gate import CabGate

    return CabGate(settings.changes, lambda: vendor_client("servicenow", settings.servicenow))


def forge_host_of(settings: Settings) -> Callable[[str], ForgeHost] | None:
    """A maker of the configured forge's adapter for the factory's calls on behalf of a
    person (the run's sponsor; "" for none), None for the local forge; each call builds one
    (reading the app token file: a rotated token needs no restart; review/forges/build.py)."""
    if not settings.forge.is_remote:
        return None
    from codefactory.review.forges.build import forge_host

    def host(acting_for: str) -> ForgeHost:
        built = forge_host(settings, acting_for=acting_for)
        assert built is not None  # the type is not local
        return built

    return host


def forge_reconciler(
    settings: Settings, store: RunStore, identity: IdentityServices, review: ReviewDesk
) -> Reconciler:
    """Reconciliation of forge review and merge events: approvals go to the review desk,
    unapproved merges alert the security role on the configured channels (`notify.*`)."""
    from codefactory.review.notifications import SecurityAlerts, channels
    from codefactory.review.reconcile import Reconciler

    return Reconciler(
        directory=identity.directory,
        run_of=store.get_run,
        events_of=store.audit_events,
        runs_with_commit=store.runs_with_head_commit,
        forges=frozenset({settings.forge.type}) if settings.forge.is_remote else frozenset(),
        host=forge_host_of(settings),  # approvals are confirmed with the forge itself
        base_branch=settings.forge.base_branch,
        hostname=urlsplit(settings.forge.base_url).hostname or "",
        approvals=review,
        alerts=SecurityAlerts(
            channels=channels(settings.notify), directory=identity.directory, record=store.append
        ),
    )


def open_database(settings: Settings) -> DatabaseEngine:
    """The store's database (`settings.database_url`) at the newest schema: the data folder
    made (or tightened to) 0700 first, an SQLite file and its WAL 0600 (store/db.py)."""
    from codefactory.store.db import open_engine

    prepare_data_dir(settings.data_dir)  # 0700 (tightened if looser); the database 0600
    return open_engine(settings.database_url)


class AuditLogReadOnly(RuntimeError):
    """A write (an append or a checkpoint) through the audit log of `open_store`, which
    only reads: writers go through `build_factory`, whose log signs, streams and witnesses."""


class ReadOnlyAuditLog(ForwardingAuditLog):
    """The store's audit log for reading (events, proofs, verification); `append` and
    `checkpoint` raise AuditLogReadOnly."""

    def append(self, event: AuditEvent, *, session: Session | None = None) -> int:
        """Refused: raises AuditLogReadOnly."""
        raise AuditLogReadOnly(f"the store was opened for reading: cannot append {event.name}")

    def checkpoint(self) -> SignedCheckpoint:
        """Refused: raises AuditLogReadOnly."""
        raise AuditLogReadOnly("the store was opened for reading: cannot sign a checkpoint")


def open_store(settings: Settings) -> RunStore:
    """The runs repository alone, for the commands that only read it (`runs list`,
    `runs show`): the database as `build_factory` opens it (same folder modes, same
    migration to head) and the audit log's stored events, without the issuer, identity,
    policy, sandbox or any adapter. Its transactions that audit raise AuditLogReadOnly."""
    from codefactory.audit.sql import SqlAuditLog
    from codefactory.store.runs import RunStore

    engine = open_database(settings)
    return RunStore(engine, ReadOnlyAuditLog(SqlAuditLog(engine)))


def build_factory(settings: Settings, *, observer: RunObserver | None = None) -> Factory:
    """Wire the embedded defaults: SQLite, bubblewrap, recipes, Cedar, the local forge."""
    from codefactory.advisories import AdvisoryDatabase
    from codefactory.advisories.importer import default_advisories
    from codefactory.audit.publishing import checkpoint_when_resting
    from codefactory.audit.sql import SqlAuditLog
    from codefactory.audit.wiring import audit_log
    from codefactory.context.service import ContextService
    from codefactory.engines.dependency_bump import DependencyBumpEngine
    from codefactory.engines.lint_fix import LintFixEngine
    from codefactory.guards import halt_watch, operating_guards
    from codefactory.identity.governance import statement_verifier
    from codefactory.identity.services import (
        agent_provenance,
        build_identity,
        check_signing,
        issuer_for,
        signed_facts,
    )
    from codefactory.observability.wiring import traced
    from codefactory.package.builder import FolderPackageBuilder
    from codefactory.review.local_forge import LocalForge
    from codefactory.review.signing import AgentCommitSigning
    from codefactory.runs.loop import RunLoop
    from codefactory.runs.policy_log import active_policy
    from codefactory.runs.registry_log import active_registry, record_registry
    from codefactory.runs.review import ReviewDesk
    from codefactory.runs.sessions import GatewaySessions, RegistryClearance
    from codefactory.runs.waiver_log import signed_verify_settings
    from codefactory.sandbox.audited import AuditedSandbox
    from codefactory.sandbox.backends import build_sandbox, python_interpreters
    from codefactory.sandbox.halting import HaltingSandbox
    from codefactory.sandbox.mirror import Mirrors
    from codefactory.sandbox.setup import dependency_files, install_dependencies
    from codefactory.store.leases import lease_watch
    from codefactory.store.runs import RunStore
    from codefactory.store.verify_tables import SqlVerifyCache
    from codefactory.verify.compose import default_gate

    engine = open_database(settings)
    issuer = issuer_for(settings)
    sql_audit = SqlAuditLog(engine, sign=issuer.note_signer, public_keys=issuer.raw_public_keys)
    audit = audit_log(settings, engine, sql_audit)  # SIEM stream, witnesses (docs/witnesses.md)
    store = RunStore(engine, audit)
    identity = build_identity(
        settings, engine=engine, audit=audit, issuer=issuer, default_agent=default_agent(settings)
    )
    check_signing(identity, audit, signer_mode=settings.identity.signer)  # HSM down: fail closed
    observer = checkpoint_when_resting(audit, notifying(settings, store, identity, observer))
    observer = traced(settings.observability, engine, observer)  # a trace per run (OTLP)
    advisories = AdvisoryDatabase.load(
        settings.advisories_dir or default_advisories(settings.data_dir, SHIPPED_ADVISORIES)
    )
    sandbox_settings = settings.sandbox

    mirrors = Mirrors(settings.data_dir / "mirrors")  # the sandbox's, the forge's and verify's
    halts = halt_watch(store)  # the organisation-wide halt, read from the store (≤ 1 s old)
    sandbox = AuditedSandbox(
        HaltingSandbox(  # engine commands killed within seconds of a halt
            build_sandbox(sandbox_settings, data_dir=settings.data_dir, mirrors=mirrors),
            halts.current,
            stopped=lease_watch,  # and when the driver lost the run's lease (dispatch/)
        ),
        store.append,  # its own transaction, from its writer thread
    )
    forge = LocalForge(
        settings.forge_dir, signing=AgentCommitSigning(identity.agent_keys), mirrors=mirrors
    )

    # the Python a project asks for, as the sandbox's image builds resolve it (bubblewrap
    # shows the installed interpreters; another backend builds with its own `python`)
    interpreters = (
        python_interpreters(sandbox_settings, settings.data_dir)
        if sandbox_settings.type == "bubblewrap"
        else None
    )

    def setup(workspace: Workspace) -> list[str]:
        return install_dependencies(
            workspace,
            python=str(sandbox_settings.python),
            timeout_s=sandbox_settings.setup_timeout_s,
            interpreters=interpreters,
        )

    governed = statement_verifier(settings, identity.directory)  # re-checks the approvals
    registry, _ = active_registry(settings.engines.registry, audit, governed)  # four eyes
    record_registry(store, audit, registry)
    recipes: list[Engine] = [DependencyBumpEngine(advisories), LintFixEngine()]
    engines: dict[str, Engine] = {engine.name: engine for engine in recipes}
    engines.update(language_model_engines(settings))
    approved, _ = active_policy(settings.policy_file, audit, governed)  # four eyes: approved
    guards = operating_guards(store, approved, halts)  # the halt; daily cost caps per round
    policy, engines = guards.policy, guards.engines(engines)
    evidence_dir = settings.data_dir / "evidence"
    clearance = RegistryClearance(registry)

    context = ContextService(
        settings,
        policy=policy,
        engine_classes=clearance.data_classes,
        record=store.append,
        mirrors=mirrors,
    )
    gate = default_gate(
        signed_verify_settings(settings, identity.directory, audit),  # waivers: signed only
        advisories=advisories,
        cache=SqlVerifyCache(engine),
        sandbox=sandbox,
        setup=setup,
        python=str(sandbox_settings.python),
        test_timeout_s=settings.runs.test_timeout_s,
    )
    loop = RunLoop(
        store=store,
        policy=policy,
        agents=identity.agents,
        sandbox=sandbox,
        setup=setup,
        dependency_files=dependency_files,
        context=context,
        after_packaging=after_packaging(
            forge_publishing(settings, store, forge.repository_path),  # the forge's request
            change_filing(settings, store),  # then the CAB's change, which may cite it
        ),
        repository_data_class=settings.context.repository_data_class,
        context_token_budget=settings.context.token_budget,
        engines=engines,
        gate=gate,
        forge=forge,
        packager=FolderPackageBuilder(
            settings.packages_dir,
            provenance=agent_provenance(identity, store.decisions),
            attestor=identity.issuer,  # signs what the package held (package/attestation.py)
        ),
        budget=settings.runs,
        evidence_dir=evidence_dir,
        observer=observer,
        delegation=identity.delegation,
        default_engines=settings.engines.defaults,
        clearance=clearance,
        sessions=GatewaySessions(
            registry=registry,
            gateway=lambda: model_gateway(settings, store, context.runs, halts.current),
            policy=policy,
            store=store,
            evidence_dir=evidence_dir,
            contexts=context.runs,
        ),
    )
    review = ReviewDesk(
        store=store,
        forge=forge,
        facts=signed_facts(identity, forge),  # the commit, package, parties: as signed
        observer=observer,
        delegation=identity.delegation,
        statements=statement_verifier(settings, identity.directory),
        track=settings.review,  # QA and UAT sign-offs after approval
        cab=cab_gate(settings),  # the hand-off waits for the CAB's approval in ServiceNow
    )
    return Factory(
        settings=settings,
        store=store,
        audit=audit,
        loop=loop,
        review=review,
        identity=identity,
        mirrors=mirrors,
        gate=gate,
        reconcile=forge_reconciler(settings, store, identity, review),
    )
