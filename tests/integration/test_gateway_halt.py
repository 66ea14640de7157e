"""The model gateway during an organisation-wide halt: every call of a run is refused (403,
`halted`) with the halt's description, recorded; lifted, the same credential works again."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from codefactory.engines.gateway import ModelCall, ModelGateway, Outcome
from codefactory.engines.session import Budget
from codefactory.engines.settings import GatewaySettings
from tests.integration.test_gateway_service import HELLO, sdk

HALT = "halted by olive.ops at 2026-11-30T09:00:00Z: incident 7"


class Switch:
    """What the halt watch answers: the halt in force described, or None."""

    def __init__(self) -> None:
        self.halt: str | None = None

    def __call__(self) -> str | None:
        return self.halt


def test_a_halted_gateway_refuses_model_calls_and_records_them(tmp_path: Path) -> None:
    calls: list[ModelCall] = []
    switch = Switch()
    gateway = ModelGateway(
        GatewaySettings(upstream=""),
        state_dir=tmp_path / "gateway",
        traffic_dir=tmp_path / "traffic",
        on_call=calls.append,
        halted=switch,
    )
    gateway.start()
    try:
        credential = gateway.grant("run-h", "a", "s", "cli:codex", "gpt-test", Budget())
        with sdk(gateway, credential) as client:
            switch.halt = HALT
            with pytest.raises(openai.PermissionDeniedError) as refused:
                client.chat.completions.create(model="gpt-test", messages=HELLO)  # type: ignore[arg-type]
            assert refused.value.status_code == 403
            assert HALT in str(refused.value)
            assert calls[-1].outcome is Outcome.HALTED and calls[-1].run_id == "run-h"
            assert calls[-1].error == HALT
            switch.halt = None  # lifted: the call goes on to the next check (no upstream here)
            with pytest.raises(openai.InternalServerError) as unserved:
                client.chat.completions.create(model="gpt-test", messages=HELLO)  # type: ignore[arg-type]
            assert unserved.value.status_code == 503
            assert calls[-1].outcome is Outcome.NO_UPSTREAM
    finally:
        gateway.stop()
