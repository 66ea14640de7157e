"""How the composition root adds tracing to the run observer (the OTel SDK is loaded only
when an endpoint is set)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine

from codefactory.domain import RunState
from codefactory.observability.settings import ObservabilitySettings

RunObserver = Callable[[str, RunState, str], None]


def traced(
    settings: ObservabilitySettings, engine: Engine, observer: RunObserver | None
) -> RunObserver | None:
    """`observer` preceded by a `RunTracer` exporting over OTLP/HTTP when
    `settings.otlp_endpoint` is set; `observer` itself otherwise."""
    if not settings.otlp_endpoint:
        return observer
    from codefactory.observability.run_trails import StoreTrails
    from codefactory.observability.tracing import RunTracer, otlp_processor

    return RunTracer(
        otlp_processor(settings.otlp_endpoint),
        StoreTrails(engine),
        observer=observer,
        service_name=settings.service_name,
    )
