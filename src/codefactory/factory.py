"""The composition root: picks the adapters from settings and wires the loop.

Heavy adapters are imported inside `build_factory` so `codefactory --help` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codefactory.audit.port import AuditLog
from codefactory.config import Settings
from codefactory.engines.port import Engine
from codefactory.identity.agents import AgentIdentity
from codefactory.runs.loop import RunLoop, RunObserver
from codefactory.runs.review import ReviewDesk
from codefactory.sandbox.port import Workspace
from codefactory.store.runs import RunStore

SHIPPED_ADVISORIES = Path(__file__).parent / "advisories" / "data"


@dataclass(frozen=True, kw_only=True)
class Factory:
    """Everything a command needs: the loop, the review desk, the store and the audit log."""

    settings: Settings
    store: RunStore
    audit: AuditLog
    loop: RunLoop
    review: ReviewDesk


def default_agent(settings: Settings) -> AgentIdentity:
    """The recipe agent of the embedded default, issued by this factory."""
    return AgentIdentity(
        id=settings.agent_id,
        display_name="Code Factory recipe agent",
        issuer="codefactory:local",
        owner="platform-engineering",
    )


def build_factory(settings: Settings, *, observer: RunObserver | None = None) -> Factory:
    """Wire the embedded defaults: SQLite, bubblewrap, recipes, Cedar, the local forge."""
    from codefactory.advisories import AdvisoryDatabase
    from codefactory.audit.sql import SqlAuditLog
    from codefactory.context.sources import RepositoryFilesConnector, TicketConnector
    from codefactory.engines.dependency_bump import DependencyBumpEngine
    from codefactory.engines.lint_fix import LintFixEngine
    from codefactory.identity.agents import StaticAgentDirectory
    from codefactory.package.builder import FolderPackageBuilder
    from codefactory.policy.cedar import CedarPolicy, default_policy_path
    from codefactory.review.local_forge import LocalForge
    from codefactory.sandbox.bubblewrap import BubblewrapSandbox
    from codefactory.sandbox.setup import dependency_files, install_dependencies
    from codefactory.store.db import open_engine
    from codefactory.verify.gate import Gate
    from codefactory.verify.lint import RuffCheck
    from codefactory.verify.sca import ScaCheck
    from codefactory.verify.tests import PytestCheck

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = open_engine(settings.database_url)
    audit = SqlAuditLog(engine)
    store = RunStore(engine, audit)
    advisories = AdvisoryDatabase.load(settings.advisories_dir or SHIPPED_ADVISORIES)
    sandbox_settings = settings.sandbox
    sandbox = BubblewrapSandbox(
        settings.workspaces_dir,
        settings.cache_dir,
        python=sandbox_settings.python,
        max_output_bytes=sandbox_settings.max_output_bytes,
    )
    forge = LocalForge(settings.forge_dir)

    def setup(workspace: Workspace) -> list[str]:
        return install_dependencies(
            workspace,
            python=str(sandbox_settings.python),
            timeout_s=sandbox_settings.setup_timeout_s,
        )

    engines: dict[str, Engine] = {
        "bump_dependency": DependencyBumpEngine(advisories),
        "fix_lint": LintFixEngine(),
    }
    loop = RunLoop(
        store=store,
        policy=CedarPolicy.from_file(settings.policy_file or default_policy_path()),
        agents=StaticAgentDirectory([default_agent(settings)]),
        sandbox=sandbox,
        setup=setup,
        dependency_files=dependency_files,
        connectors=[TicketConnector(), RepositoryFilesConnector()],
        engines=engines,
        gate=Gate(
            [RuffCheck(), PytestCheck(timeout_s=settings.runs.test_timeout_s), ScaCheck(advisories)]
        ),
        forge=forge,
        packager=FolderPackageBuilder(settings.packages_dir),
        budget=settings.runs,
        evidence_dir=settings.data_dir / "evidence",
        observer=observer,
    )
    review = ReviewDesk(store=store, forge=forge, observer=observer)
    return Factory(settings=settings, store=store, audit=audit, loop=loop, review=review)
