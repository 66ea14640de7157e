"""Grants and budgets: credentials, refusals, the spent measure, accounting under threads."""

from __future__ import annotations

import threading
import time

import pytest

from codefactory.engines.gateway.budget import spent_measure
from codefactory.engines.gateway.grants import GrantTable
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
