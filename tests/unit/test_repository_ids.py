"""Canonical repository ids (docs/repositories.md), the `no_change` outcome in the state
machine, and the dashboard's rendering of both."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from codefactory.domain import (
    TERMINAL_STATES,
    ChangeKind,
    Run,
    RunState,
    may_transition,
)
from codefactory.review.local_forge import forge_name
from codefactory.triggers.repositories import check_id, ids_by_path, local_id
from codefactory.triggers.repositories import forge_name as key_name
from codefactory.triggers.settings import WEBHOOK_SOURCES, RepositoryBinding, TriggerSettings
from codefactory.web.dashboard.queue import queue_page
from codefactory.web.dashboard.templates import render


def test_a_checkout_without_configuration_is_named_by_its_resolved_path(tmp_path: Path) -> None:
    real = tmp_path / "a" / "itsdangerous"
    real.mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(real)
    assert local_id(link) == local_id(real) == f"local:{real.resolve()}"
    assert local_id(tmp_path / "b" / "itsdangerous") != local_id(real)  # same folder name


@pytest.mark.parametrize(
    "value", ["acme/payments", "group/sub/project", "https://git.example.com/acme/pay.git"]
)
def test_configured_ids(value: str) -> None:
    assert check_id(value) == value


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("", "not a repository id"),
        ("acme/pay ments", "not a repository id"),
        ('acme/"pay"', "not a repository id"),
        ("acme\\pay", "not a repository id"),
        ("acme/pay\n", "not a repository id"),
        ("x" * 513, "not a repository id"),
        ("local:/srv/payments", "unconfigured checkouts"),
    ],
)
def test_ids_that_cannot_be_configured_are_named(value: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_id(value)
    if value:  # an empty `id` on a binding means "not configured"
        with pytest.raises(ValidationError, match=why):
            RepositoryBinding(path=Path("/srv/x"), id=value)


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("acme/payments", "acme/payments"),
        ("github:acme/payments", "acme/payments"),
        ("gitlab:group/sub/project", "group/sub/project"),
        ("PAY", None),  # a Jira project key
        ("jira:PAY", None),
        ("payments-api", None),  # a Sentry slug, a Datadog service
        ("unknown:acme/payments", None),  # not a source's prefix: not a forge name
    ],
)
def test_which_binding_keys_are_forge_names(key: str, name: str | None) -> None:
    assert key_name(key, WEBHOOK_SOURCES) == name


def test_one_checkout_has_one_id_among_its_bindings() -> None:
    a, b, c = Path("/srv/a"), Path("/srv/b"), Path("/srv/c")
    ids = ids_by_path(
        [
            ("github:acme/a", a, ""),
            ("A", a, ""),  # a Jira key for the same checkout: the forge name is its id
            ("B", b, "acme/b"),
            ("acme/b-old", b, ""),  # a configured id wins over a key
            ("acme/c", c, ""),
            ("acme/c-mirror", c, ""),  # two names and no id: ambiguous, so local
        ],
        WEBHOOK_SOURCES,
    )
    assert ids == {a: "acme/a", b: "acme/b", c: "local:/srv/c"}


def test_deliveries_keep_the_name_they_carry_and_other_sources_get_the_checkouts_id(
    tmp_path: Path,
) -> None:
    pay = tmp_path / "payments"
    settings = TriggerSettings(
        repositories={
            "acme/payments": RepositoryBinding(path=pay),
            "acme/payments-mirror": RepositoryBinding(path=pay),
            "PAY": RepositoryBinding(path=pay),
            "sentry:payments-api": RepositoryBinding(path=tmp_path / "api", id="acme/api"),
            "SVC": RepositoryBinding(path=tmp_path / "svc"),
        }
    )
    assert settings.delivery_repository_id("github", "acme/payments") == "acme/payments"
    assert settings.delivery_repository_id("gitlab", "acme/payments-mirror") == (
        "acme/payments-mirror"
    )
    # a Jira key names no repository; its checkout has two forge names, so it is local
    assert settings.delivery_repository_id("jira", "PAY") == f"local:{pay.resolve()}"
    assert settings.delivery_repository_id("sentry", "payments-api") == "acme/api"
    assert settings.delivery_repository_id("jira", "SVC") == f"local:{(tmp_path / 'svc')}"
    assert settings.delivery_repository_id("jira", "NOPE") is None
    assert settings.repository_id(tmp_path / "api") == "acme/api"  # the CLI's --repo
    assert settings.repository_id(tmp_path / "other") == f"local:{tmp_path / 'other'}"


def test_ids_that_slug_alike_get_different_forge_repositories() -> None:
    names = {forge_name(i) for i in ("acme/x", "acme-x", "Acme/X", "local:/srv/acme/x")}
    assert len(names) == 4
    assert forge_name("pallets/itsdangerous").startswith("pallets-itsdangerous-")
    assert forge_name("pallets/itsdangerous").endswith(".git")


def test_no_change_is_a_terminal_outcome_reached_from_proposing_only() -> None:
    assert RunState.NO_CHANGE in TERMINAL_STATES and RunState.NO_CHANGE.is_terminal
    assert may_transition(RunState.PROPOSING, RunState.NO_CHANGE)
    for state in RunState:
        if state is not RunState.PROPOSING:
            assert not may_transition(state, RunState.NO_CHANGE), state
    assert not may_transition(RunState.NO_CHANGE, RunState.FAILED)


def run(run_id: str, repository: str, state: RunState, reason: str) -> Run:
    return Run(
        id=run_id, trigger_id="t", kind=ChangeKind.FIX_LINT, repository=repository,
        sponsor="priya", agent_id="agent:x", state=state, reason=reason, base_commit="",
        head_commit="", branch="", package_dir="", created_at=datetime.now(UTC),
    )  # fmt: skip


def test_the_dashboard_shows_each_runs_repository_and_counts_no_change_apart() -> None:
    runs = [
        run("r-1", "pallets/itsdangerous", RunState.NO_CHANGE, "no change needed: gone"),
        run("r-2", "someone/itsdangerous", RunState.FAILED, "<script>x</script>"),
        run("r-3", "someone/itsdangerous", RunState.FAILED, "boom"),
    ]
    page = render("queue.html.j2", page=queue_page(runs, viewer=None, triggers=lambda _: None))
    assert "<th>run</th><th>repository</th><th>state</th>" in page
    assert "<td>pallets/itsdangerous</td><td>no_change</td>" in page
    assert "failed 2 · no_change 1" in page
    assert "<script>" not in page and "&lt;script&gt;" in page


DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_docs_name_every_outcome_and_every_binding_setting() -> None:
    runs = (DOCS / "runs.md").read_text()
    for state in TERMINAL_STATES:
        assert f"| `{state.value}` |" in runs, state
    assert "no-change-needed" in runs
    triggers = (DOCS / "triggers.md").read_text()
    for name in RepositoryBinding.model_fields:
        assert f"\n{name} = " in triggers, name
    assert "local:" in (DOCS / "repositories.md").read_text()
