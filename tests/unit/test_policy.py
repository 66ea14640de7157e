"""Cedar policies, evaluated for real by cedarpy: the shipped default and the engine's rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codefactory.domain import ChangeKind
from codefactory.policy import Decision, PolicyEngine, PolicyInvalid
from codefactory.policy.cedar import CedarPolicy, default_policy_path

CI_REASON = (
    "changes to CI or infrastructure need a human author: "
    "the default policy forbids agents from modifying them"
)
ROUTINE = "routine-changes-with-a-sponsor"
REPO = 'Repository::"sample-service"'
CONTEXT = {"sponsor": "alice", "labels": {"dependencies"}, "source": "jira"}


@pytest.fixture(scope="module")
def default() -> CedarPolicy:
    return CedarPolicy.from_file(default_policy_path())


def ask(
    policy: PolicyEngine,
    action: str,
    *,
    principal: str = 'TriggerSource::"jira"',
    context: Mapping[str, object] | None = None,
    entities: Sequence[Mapping[str, object]] = (),
) -> Decision:
    return policy.authorize(
        principal=principal,
        action=action,
        resource=REPO,
        context=CONTEXT if context is None else context,
        entities=entities,
    )


# --- the shipped default policy --------------------------------------------------------


def test_the_default_policy_ships_in_the_package(default: CedarPolicy) -> None:
    assert default_policy_path().name == "default.cedar"
    assert default_policy_path().parent.name == "policy"
    assert default.policy_ids == (
        ROUTINE,
        "engine-changes-with-a-sponsor",
        "no-autonomous-ci-changes",
        "routine-changes-open-pull-requests",
        "engine-changes-open-draft-pull-requests",
        "dependency-bumps-edit-manifests",
        "no-oversized-changes",
        "engines-use-their-tools",
        "engines-never-edit-pipelines",
        "engines-read-context-they-are-cleared-for",
    )
    assert default.source == str(default_policy_path())
    assert CedarPolicy.default().policy_ids == default.policy_ids


@pytest.mark.parametrize("kind", [ChangeKind.BUMP_DEPENDENCY, ChangeKind.FIX_LINT])
@pytest.mark.parametrize("source", ["jira", "cli", "github", "schedule"])
def test_routine_changes_with_a_sponsor_are_permitted(
    default: CedarPolicy, kind: ChangeKind, source: str
) -> None:
    decision = ask(default, kind, principal=f'TriggerSource::"{source}"')
    assert decision.allowed
    assert decision.policy_ids == (ROUTINE,)
    assert decision.reasons[0].startswith("dependency bumps and lint fixes are routine changes")
    assert decision.errors == ()


def test_an_action_may_be_given_as_a_cedar_uid(default: CedarPolicy) -> None:
    assert ask(default, 'Action::"fix_lint"').allowed


@pytest.mark.parametrize(
    "context",
    [{}, {"sponsor": ""}, {"labels": ["x"], "source": "cli"}],
    ids=["empty", "empty-sponsor", "no-sponsor"],
)
def test_routine_changes_without_a_sponsor_are_refused(
    default: CedarPolicy, context: dict[str, object]
) -> None:
    decision = ask(default, "bump_dependency", context=context)
    assert not decision.allowed
    assert (decision.policy_ids, decision.reasons, decision.errors) == ((), (), ())


def test_only_trigger_sources_start_runs(default: CedarPolicy) -> None:
    assert not ask(default, "bump_dependency", principal='User::"alice"').allowed


@pytest.mark.parametrize("kind", [ChangeKind.MODIFY_CI, ChangeKind.MODIFY_INFRASTRUCTURE])
def test_ci_and_infrastructure_changes_are_forbidden_with_a_reason(
    default: CedarPolicy, kind: ChangeKind
) -> None:
    decision = ask(default, kind)
    assert not decision.allowed
    assert decision.policy_ids == ("no-autonomous-ci-changes",)
    assert decision.reasons == (CI_REASON,)
    assert decision.summary == CI_REASON


def test_general_changes_are_refused_by_default_deny(default: CedarPolicy) -> None:
    decision = ask(default, ChangeKind.GENERAL_CHANGE)
    assert not decision.allowed
    assert (decision.policy_ids, decision.reasons, decision.errors) == ((), (), ())
    assert "default deny" in decision.summary


@pytest.mark.parametrize(
    ("engine", "sponsor", "allowed"),
    [
        ("agent:pydantic-ai", "priya.shah", True),
        ("cli:codex", "priya.shah", True),
        ("agent:pydantic-ai", "", False),
        ("recipe:lint-fix", "priya.shah", False),
        ("agentic:other", "priya.shah", False),
    ],
)
def test_general_changes_need_a_language_model_engine_and_a_sponsor(
    default: CedarPolicy, engine: str, sponsor: str, allowed: bool
) -> None:
    context = {"sponsor": sponsor, "engine": engine, "labels": [], "source": "jira"}
    decision = ask(default, ChangeKind.GENERAL_CHANGE, context=context)
    assert decision.allowed is allowed
    if allowed:
        assert decision.policy_ids == ("engine-changes-with-a-sponsor",)


def tool_call(default: CedarPolicy, tool: str, path: str = "") -> bool:
    context = {
        "tool": tool,
        "arguments": "{}",
        "path": path,
        "sponsor": "priya.shah",
        "agent": "agent:x",
        "kind": "general_change",
        "run": "r1",
    }
    return default.authorize(
        principal='Engine::"agent:pydantic-ai"',
        action='Action::"tool-call"',
        resource='Repository::"sample-service"',
        context=context,
    ).allowed


@pytest.mark.parametrize(
    ("tool", "path", "allowed"),
    [
        ("read_file", ".github/workflows/ci.yml", True),
        ("edit_file", "service/hostnames.py", True),
        ("run", "", True),
        ("edit_file", ".github/workflows/ci.yml", False),
        ("apply_patch", ".gitlab-ci.yml", False),
        ("edit_file", "Jenkinsfile", False),
    ],
)
def test_engines_use_their_tools_but_never_edit_pipelines(
    default: CedarPolicy, tool: str, path: str, allowed: bool
) -> None:
    assert tool_call(default, tool, path) is allowed


@given(
    kind=st.sampled_from(list(ChangeKind)),
    principal_type=st.sampled_from(["TriggerSource", "User"]),
    principal_id=st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_0123456789", max_size=12),
    sponsor=st.none() | st.text(max_size=12),
    labels=st.frozensets(st.text(max_size=8), max_size=3),
)
def test_default_policy_matches_its_description(
    default: CedarPolicy,
    kind: ChangeKind,
    principal_type: str,
    principal_id: str,
    sponsor: str | None,
    labels: frozenset[str],
) -> None:
    context: dict[str, object] = {"labels": labels, "source": principal_id}
    if sponsor is not None:
        context["sponsor"] = sponsor
    decision = ask(default, kind, principal=f'{principal_type}::"{principal_id}"', context=context)
    forbidden = kind in {ChangeKind.MODIFY_CI, ChangeKind.MODIFY_INFRASTRUCTURE}
    # no `engine` in this context: a general change is never permitted
    routine = kind in {ChangeKind.BUMP_DEPENDENCY, ChangeKind.FIX_LINT}
    permitted = routine and principal_type == "TriggerSource" and bool(sponsor)
    assert decision.allowed == permitted
    assert decision.errors == ()
    if forbidden:
        assert decision.policy_ids == ("no-autonomous-ci-changes",)
    elif not permitted:
        assert decision.policy_ids == ()


# --- evaluation rules ------------------------------------------------------------------

PERMIT_ALL = '@id("everything")\n@reason("anything goes")\npermit (principal, action, resource);\n'


def test_a_forbid_overrides_a_permit() -> None:
    policy = CedarPolicy(
        PERMIT_ALL
        + '@id("no-prod")\n@reason("production is off limits")\n'
        + 'forbid (principal, action, resource == Repository::"prod");'
    )
    assert ask(policy, "fix_lint").allowed
    decision = policy.authorize(
        principal='TriggerSource::"cli"',
        action="fix_lint",
        resource='Repository::"prod"',
        context={},
    )
    assert not decision.allowed
    assert (decision.policy_ids, decision.reasons) == (("no-prod",), ("production is off limits",))


def test_every_matching_permit_is_named_in_file_order() -> None:
    policy = CedarPolicy(
        '@id("first")\n@reason("one")\npermit (principal, action, resource);\n'
        '@id("second")\n@reason("two")\npermit (principal, action == Action::"fix_lint", resource);'
    )
    decision = ask(policy, "fix_lint")
    assert (decision.policy_ids, decision.reasons) == (("first", "second"), ("one", "two"))


def test_context_sets_and_entity_hierarchies_reach_cedar() -> None:
    policy = CedarPolicy(
        '@id("bots-with-label")\n@reason("bots may act on labelled tickets")\n'
        'permit (principal in Group::"bots", action, resource)\n'
        'when { context.labels.contains("agent-ok") };'
    )
    bots = [
        {"uid": {"type": "TriggerSource", "id": "jira"}, "attrs": {}, "parents": [group]}
        for group in [{"type": "Group", "id": "bots"}]
    ]
    labelled = {"labels": {"agent-ok", "x"}}
    assert ask(policy, "fix_lint", context=labelled, entities=bots).allowed
    assert not ask(policy, "fix_lint", context={"labels": ("x",)}, entities=bots).allowed
    assert not ask(policy, "fix_lint", context=labelled).allowed


def test_an_evaluation_error_in_a_forbid_denies_instead_of_failing_open() -> None:
    policy = CedarPolicy(
        PERMIT_ALL + '@id("no-risky")\n@reason("risky changes need review")\n'
        "forbid (principal, action, resource) when { context.risk > 3 };"
    )
    decision = ask(policy, "fix_lint", context={})
    assert not decision.allowed
    assert (decision.policy_ids, decision.reasons) == ((), ())
    assert len(decision.errors) == 1
    assert "risk" in decision.errors[0]
    assert decision.summary.startswith("policy evaluation error: ")
    assert ask(policy, "fix_lint", context={"risk": 1}).allowed


def test_a_firing_forbid_keeps_its_reason_next_to_errors() -> None:
    policy = CedarPolicy(
        '@id("no-ci")\n@reason("no CI")\nforbid (principal, action, resource);\n'
        '@id("broken")\n@reason("broken")\npermit (principal, action, resource) when { context.x };'
    )
    decision = ask(policy, "modify_ci", context={})
    assert not decision.allowed
    assert decision.policy_ids == ("no-ci",)
    assert decision.errors != ()


def test_a_malformed_request_is_denied_with_the_error() -> None:
    decision = ask(CedarPolicy(PERMIT_ALL), "fix_lint", principal="jira")
    assert not decision.allowed
    assert "principal" in decision.errors[0]


def test_an_empty_policy_denies_everything() -> None:
    policy = CedarPolicy("// nothing permitted\n")
    assert policy.policy_ids == ()
    assert not ask(policy, "fix_lint").allowed


# --- invalid policies ------------------------------------------------------------------


def test_an_invalid_policy_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.cedar"
    path.write_text('@id("x")\n@reason("y")\npermit (principal, action, resource')
    with pytest.raises(PolicyInvalid, match="broken.cedar: not valid Cedar") as raised:
        CedarPolicy.from_file(path)
    assert raised.value.path == str(path)
    assert raised.value.message.startswith("not valid Cedar: ")


def test_a_missing_policy_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PolicyInvalid, match="missing.cedar: cannot read it"):
        CedarPolicy.from_file(tmp_path / "missing.cedar")


def test_a_policy_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "latin1.cedar"
    path.write_bytes(b"// \xe9\n")
    with pytest.raises(PolicyInvalid, match="latin1.cedar: cannot read it"):
        CedarPolicy.from_file(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("permit (principal, action, resource);", "policy0 needs a non-empty @id"),
        ('@reason("r") permit (principal, action, resource);', "policy0 needs a non-empty @id"),
        ('@id("") @reason("r") permit (principal, action, resource);', "non-empty @id"),
        (
            PERMIT_ALL + '@id("x") forbid (principal, action, resource);',
            'the policy @id\\("x"\\) needs a non-empty @reason',
        ),
        ('@id("x") @reason("") permit (principal, action, resource);', "non-empty @reason"),
        (PERMIT_ALL + PERMIT_ALL, 'two policies have @id\\("everything"\\)'),
        (
            '@id("t") @reason("r") permit (principal == ?principal, action, resource);',
            "templates",
        ),
    ],
)
def test_policies_need_an_id_and_a_reason(text: str, message: str) -> None:
    with pytest.raises(PolicyInvalid, match=message) as raised:
        CedarPolicy(text)
    assert raised.value.path == "<policy text>"
