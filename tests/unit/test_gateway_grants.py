"""Grants and budgets: credentials, refusals, the spent measure, accounting under threads."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from codefactory.engines.gateway.budget import spent_measure
from codefactory.engines.gateway.grants import GrantTable
from codefactory.engines.gateway.records import ModelCall, Outcome
from codefactory.engines.gateway.tally import RefusalTally
from codefactory.engines.gateway.usage import Usage
from codefactory.engines.session import Budget, Price, Spend


def table_with(budget: Budget, run_id: str = "run-1") -> tuple[GrantTable, str]:
    table = GrantTable()
    return table, table.grant(run_id, "agent", "sponsor", "cli:codex", "m", budget)


def test_credentials_are_fresh_and_bound_to_their_run() -> None:
    table, credential = table_with(Budget())
    other = table.grant("run-2", "agent", "sponsor", "cli:codex", "m", Budget())
    assert credential.startswith("cfk-") and len(credential) >= 4 + 43 and credential != other
    auth = table.authenticate(["", "cfk-wrong", credential])
    assert auth.grant is not None and auth.grant.run_id == "run-1" and auth.refusal == ""
    assert table.authenticate([other]).grant.run_id == "run-2"  # type: ignore[union-attr]


def test_refusals() -> None:
    table, credential = table_with(Budget())
    assert table.authenticate([]).refusal == "no credential: send the run's key"
    assert table.authenticate(["cfk-nope"]).refusal == "unknown credential"
    assert table.revoke(credential) and not table.revoke(credential)
    assert not table.revoke("cfk-never")
    revoked = table.authenticate([credential])
    assert revoked.refusal == "credential revoked" and revoked.grant is not None


def test_wall_time_expires_the_credential() -> None:
    table, credential = table_with(Budget(wall_s=0.05))
    assert table.authenticate([credential]).refusal == ""
    time.sleep(0.06)
    assert (
        table.authenticate([credential]).refusal == "credential expired: run wall time 0.05s spent"
    )
    forever, unlimited = table_with(Budget(wall_s=None))
    assert forever.authenticate([unlimited]).refusal == ""


def test_bad_run_ids_are_refused() -> None:
    for bad in ("", "../etc", "a/b", "x" * 200, ".hidden"):
        with pytest.raises(ValueError, match="run id"):
            GrantTable().grant(bad, "a", "s", "e", "m", Budget())


@pytest.mark.parametrize(
    ("budget", "spend", "measure"),
    [
        (Budget(), Spend(), None),
        (Budget(requests=2), Spend(requests=2), "requests 2/2"),
        (Budget(requests=0), Spend(), "requests 0/0"),
        (
            Budget(requests=None, input_tokens=10),
            Spend(requests=99, input_tokens=10),
            "input_tokens 10/10",
        ),
        (
            Budget(output_tokens=200_000),
            Spend(output_tokens=200_000),
            "output_tokens 200000/200000",
        ),
        (Budget(cost_usd=5.0), Spend(cost_usd=5.00001), "cost_usd 5.0000/5.0000"),
        (
            Budget(requests=None, input_tokens=None, output_tokens=None, cost_usd=None),
            Spend(requests=10**9, cost_usd=1e9),
            None,
        ),
    ],
)
def test_spent_measure(budget: Budget, spend: Spend, measure: str | None) -> None:
    assert spent_measure(budget, spend) == measure


def test_account_adds_tokens_cost_and_the_estimate_flag() -> None:
    budget = Budget(prices={"m": Price(input_per_mtok=1.0, output_per_mtok=4.0)})
    table, credential = table_with(budget)
    grant = table.authenticate([credential]).grant
    assert grant is not None
    assert table.reserve(grant, count_request=True) is None
    cost = table.account(grant, "m", Usage(input_tokens=1000, output_tokens=500), estimated=False)
    assert cost == pytest.approx(0.003)
    table.account(grant, "unpriced", Usage(input_tokens=1, output_tokens=1), estimated=True)
    assert table.spend("run-1") == Spend(
        requests=1,
        input_tokens=1001,
        output_tokens=501,
        cost_usd=pytest.approx(0.003),
        estimated=True,
    )
    assert table.spend("never") == Spend()


def test_concurrent_reservations_never_pass_the_request_cap() -> None:
    table, credential = table_with(Budget(requests=25))
    grant = table.authenticate([credential]).grant
    assert grant is not None
    allowed: list[bool] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for _ in range(20):
            allowed.append(table.reserve(grant, count_request=True) is None)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(allowed) == 25 and table.spend("run-1").requests == 25


def test_grant_keeps_its_positional_signature_and_takes_extra_models() -> None:
    table = GrantTable()
    plain = table.authenticate([table.grant("run-1", "a", "s", "cli:claude-code", "m", Budget())])
    assert plain.grant is not None and plain.grant.models == ("m",)
    assert plain.grant.allows("m") and not plain.grant.allows("small")
    credential = table.grant(
        "run-2", "a", "s", "cli:claude-code", "m", Budget(), extra_models=("small", "m")
    )
    extra = table.authenticate([credential]).grant
    assert extra is not None and extra.models == ("m", "small") and extra.allows("small")
    with pytest.raises(TypeError):
        table.grant("run-3", "a", "s", "e", "m", Budget(), ("small",))  # type: ignore[misc]


PRICED = {"m": Price(input_per_mtok=1.0, output_per_mtok=1.0)}


def test_admission_caps_calls_in_flight() -> None:
    """G4: a run has at most `max_concurrent` calls in flight; ending one frees its slot."""
    table, credential = table_with(Budget(prices=PRICED))
    grant = table.authenticate([credential]).grant
    assert grant is not None
    first, second = (
        table.admit(grant, "m", input_tokens=10, output_tokens=100, max_concurrent=2)
        for _ in range(2)
    )
    third = table.admit(grant, "m", input_tokens=10, output_tokens=100, max_concurrent=2)
    assert first.reservation and second.reservation and third.reservation is None
    assert third.busy and "2 calls of this run in flight (at most 2)" in third.refusal
    table.release(first.reservation)
    table.release(first.reservation)  # idempotent
    assert table.in_flight("run-1") == 1
    assert table.admit(grant, "m", input_tokens=1, output_tokens=1, max_concurrent=2).reservation
    assert table.spend("run-1").requests == 3


def test_reservations_hold_the_worst_case_until_settled() -> None:
    """G4: a call holds its `max_tokens` (or the rest of the output cap) and its input;
    the next call is admitted only while the measures have room counting those holds."""
    table, credential = table_with(Budget(output_tokens=1500, cost_usd=None, prices=PRICED))
    grant = table.authenticate([credential]).grant
    assert grant is not None
    held = table.admit(grant, "m", input_tokens=10, output_tokens=None, max_concurrent=5)
    assert held.reservation is not None and held.reservation.output_tokens == 1500
    refused = table.admit(grant, "m", input_tokens=10, output_tokens=5, max_concurrent=5)
    assert refused.reservation is None and refused.busy
    assert refused.refusal == "output_tokens 1500/1500 (with 1 call(s) in flight)"
    cost = table.settle(
        grant, held.reservation, "m", Usage(input_tokens=10, output_tokens=1000), estimated=False
    )
    assert cost == pytest.approx(1010 / 1e6)
    assert table.spend("run-1").output_tokens == 1000 and table.in_flight("run-1") == 0
    small = table.admit(grant, "m", input_tokens=10, output_tokens=200, max_concurrent=5)
    assert small.reservation is not None and small.reservation.output_tokens == 200
    rest = table.admit(grant, "m", input_tokens=10, output_tokens=None, max_concurrent=5)
    assert rest.reservation is not None and rest.reservation.output_tokens == 300
    assert table.admit(grant, "m", input_tokens=1, output_tokens=1, max_concurrent=5).busy
    # A retry is counted against what the other calls hold, not its own hold.
    assert table.recount(grant, rest.reservation) is None
    assert table.recount(grant, small.reservation) is None


def test_concurrent_admissions_never_overshoot_the_output_cap() -> None:
    """G4: under threads, admitted worst cases never exceed the cap."""
    table, credential = table_with(Budget(requests=None, output_tokens=1000, cost_usd=None))
    grant = table.authenticate([credential]).grant
    assert grant is not None
    admitted: list[int] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for _ in range(50):
            admission = table.admit(
                grant, "m", input_tokens=1, output_tokens=300, max_concurrent=100
            )
            if admission.reservation is not None:
                admitted.append(admission.reservation.output_tokens)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(admitted) == 1000 and len(admitted) == 4  # 300 + 300 + 300 + 100


def test_refused_calls_are_recorded_in_aggregate() -> None:
    """G3: the first refusal of a kind at once, the rest as one counted record per interval
    (and whatever is left at stop)."""
    tally = RefusalTally(interval_s=60)
    call = ModelCall(
        run_id="",
        agent_id="",
        sponsor="",
        engine="",
        protocol="unknown",
        method="GET",
        path="/x0",
        model="",
        status=401,
        attempt=0,
        streamed=False,
        request_sha256="",
        response_sha256="",
        input_tokens=0,
        output_tokens=0,
        cost_usd=0.0,
        usage_estimated=False,
        duration_s=0.0,
        outcome=Outcome.UNAUTHENTICATED,
        error="unknown credential",
    )
    assert tally.add(call, now=0.0) == [call]
    for index in range(1, 300):
        assert tally.add(replace(call, path=f"/x{index}"), now=1.0) == []
    revoked = replace(call, run_id="run-1", error="credential revoked")
    assert tally.add(revoked, now=2.0) == [revoked]  # another kind: its own first record
    assert tally.due(now=30.0) == []
    [aggregate] = tally.due(now=61.0)
    assert (aggregate.count, aggregate.path, aggregate.error) == (299, "/x1", "unknown credential")
    assert tally.add(call, now=62.0) == []  # counted: its kind was recorded within the interval
    [rest] = tally.drain()
    assert rest.count == 1 and tally.drain() == []


def test_a_run_taken_over_keeps_the_budget_its_first_worker_spent() -> None:
    run_id = "r-20261130-000000-aaaaaa"
    budget = Budget(requests=3)
    first = GrantTable()  # the worker that was killed
    entry = first.authenticate([first.grant(run_id, "agent:x", "priya", "e", "m", budget)]).grant
    assert entry is not None
    assert [first.reserve(entry, count_request=True) is None for _ in range(2)] == [True, True]
    second = GrantTable()  # the worker that took the run over, told what the log says
    credential = second.grant(
        run_id, "agent:x", "priya", "e", "m", budget, spent=Spend(requests=2, cost_usd=0.5)
    )
    taken = second.authenticate([credential]).grant
    assert taken is not None
    assert second.reserve(taken, count_request=True) is None  # the third call of three
    assert second.reserve(taken, count_request=True) is not None  # no fourth
    assert second.spend(run_id).cost_usd == 0.5
