"""OpenTelemetry traces of runs: one trace per run, one span per step (OTel trace API).

A run may be driven by several processes (a worker dies, another takes the run over; the
web process records the review), so no process keeps a span open across transitions.
Instead, at each transition the step just left is emitted whole from the store: it started
at its own `run_states` row and ended at the next one. Trace id, the root span's id and each
step's span id are derived from the run id (and the step's row id), so every process's spans
of one run share one trace under one root, and a step emitted twice is the same span. When
the run ends, the root span (`run`, first row to last) and the final state's instant span
close the trace. A process also emits the steps of transitions written without the observer
since the last step it emitted of that run.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)
from opentelemetry.util.types import AttributeValue

from codefactory.domain import RunState
from codefactory.observability.run_trails import RunTrail, Step

RunObserver = Callable[[str, RunState, str], None]
"""The loop's observer (runs.loop.RunObserver): run id, new state, its reason."""
Trails = Callable[[str], RunTrail | None]

log = logging.getLogger(__name__)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _derived(kind: str, *parts: str, size: int) -> int:
    digest = hashlib.sha256("\0".join(("codefactory", kind, *parts)).encode()).digest()
    return int.from_bytes(digest[:size], "big") or 1  # W3C Trace Context: never all zero


def trace_id_of(run_id: str) -> int:
    """The run's 128-bit trace id (W3C Trace Context), the same in every process."""
    return _derived("trace", run_id, size=16)


def root_span_id_of(run_id: str) -> int:
    """The 64-bit id of the run's root span, parent of every step span."""
    return _derived("root", run_id, size=8)


def step_span_id_of(run_id: str, row_id: int) -> int:
    """The 64-bit id of the span of the step recorded in `run_states` row `row_id`."""
    return _derived("step", run_id, str(row_id), size=8)


_PINNED: ContextVar[tuple[int, int] | None] = ContextVar("codefactory_span_ids", default=None)


class _DerivedIds(IdGenerator):
    """Gives the SDK the ids `_pinned` set (random ones outside it)."""

    _random = RandomIdGenerator()

    def generate_span_id(self) -> int:
        pinned = _PINNED.get()
        return pinned[1] if pinned else self._random.generate_span_id()

    def generate_trace_id(self) -> int:
        pinned = _PINNED.get()
        return pinned[0] if pinned else self._random.generate_trace_id()


@contextmanager
def _pinned(trace_id: int, span_id: int) -> Iterator[None]:
    token = _PINNED.set((trace_id, span_id))
    try:
        yield
    finally:
        _PINNED.reset(token)


class RunTracer:
    """A run observer emitting each run's spans to `processor`, then calling `observer`.

    Tracing never fails a run: an error while emitting is logged and the run goes on."""

    def __init__(
        self,
        processor: SpanProcessor,
        trails: Trails,
        *,
        observer: RunObserver | None = None,
        service_name: str = "codefactory",
    ) -> None:
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": service_name}), id_generator=_DerivedIds()
        )
        self.provider.add_span_processor(processor)
        self._tracer = self.provider.get_tracer("codefactory.runs")
        self._trails = trails
        self._observer = observer
        self._lock = threading.Lock()
        self._emitted: dict[str, int] = {}
        """Run id → row id of the last step this process emitted (runs not over)."""

    def __call__(self, run_id: str, state: RunState, reason: str) -> None:
        try:
            self._emit(run_id, RunState(state))
        except Exception:  # tracing is not a control: a lost span must not end a run
            log.exception("could not emit the trace spans of run %s entering %s", run_id, state)
        if self._observer is not None:
            self._observer(run_id, state, reason)

    def _emit(self, run_id: str, state: RunState) -> None:
        trail = self._trails(run_id)
        index = trail.entered(state.value) if trail is not None else None
        if trail is None or index is None:
            log.warning("run %s entering %s has no such step in the store", run_id, state)
            return
        steps = trail.steps
        for done in range(self._first_unemitted(run_id, trail, index), index):
            self._step(run_id, trail, steps[done], end=steps[done + 1])
        with self._lock:
            self._emitted[run_id] = steps[index - 1].row_id if index else 0
        if state.is_terminal:
            self._step(run_id, trail, steps[index], end=None)
            self._root(run_id, trail, steps[0], steps[index])
            with self._lock:
                self._emitted.pop(run_id, None)

    def _first_unemitted(self, run_id: str, trail: RunTrail, index: int) -> int:
        """The first step to emit before `index`: the one after the last this process
        emitted (transitions written without the observer still get their spans), else the
        step just left (another process emitted the ones before it)."""
        with self._lock:
            last = self._emitted.get(run_id)
        if last is None:
            return max(index - 1, 0)
        after = [n for n, step in enumerate(trail.steps[:index]) if step.row_id > last]
        return after[0] if after else index

    def _step(self, run_id: str, trail: RunTrail, step: Step, *, end: Step | None) -> None:
        attributes = _attributes(run_id, trail, step)
        if end is not None:
            attributes["codefactory.run.next_state"] = end.state
        parent = SpanContext(
            trace_id=trace_id_of(run_id),
            span_id=root_span_id_of(run_id),
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        with _pinned(trace_id_of(run_id), step_span_id_of(run_id, step.row_id)):
            span = self._tracer.start_span(
                step.state,
                context=set_span_in_context(NonRecordingSpan(parent)),
                start_time=_nanoseconds(step.at),
                attributes=attributes,
            )
        if step.state == RunState.FAILED.value:
            span.set_status(Status(StatusCode.ERROR, step.reason))
        span.end(end_time=_nanoseconds((end or step).at))

    def _root(self, run_id: str, trail: RunTrail, first: Step, last: Step) -> None:
        attributes = _attributes(run_id, trail, last)
        with _pinned(trace_id_of(run_id), root_span_id_of(run_id)):
            span = self._tracer.start_span(
                "run", start_time=_nanoseconds(first.at), attributes=attributes
            )
        if last.state == RunState.FAILED.value:
            span.set_status(Status(StatusCode.ERROR, last.reason))
        span.end(end_time=_nanoseconds(last.at))


def _attributes(run_id: str, trail: RunTrail, step: Step) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        "codefactory.run.id": run_id,
        "codefactory.run.state": step.state,
        "codefactory.run.reason": step.reason,
        "codefactory.run.repository": trail.repository,
    }
    if trail.engine:
        attributes["codefactory.run.engine"] = trail.engine
    return attributes


def _nanoseconds(at: datetime) -> int:
    """Nanoseconds since the Unix epoch, exactly (no float rounding)."""
    return (at - _EPOCH) // timedelta(microseconds=1) * 1000


def otlp_processor(endpoint: str, *, headers: Mapping[str, str] | None = None) -> SpanProcessor:
    """Batched OTLP/HTTP export (protobuf) to `<endpoint>/v1/traces`, the signal path the
    OTLP exporter specification appends to a base endpoint."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    url = endpoint.rstrip("/") + "/v1/traces"
    return BatchSpanProcessor(
        OTLPSpanExporter(endpoint=url, headers=dict(headers) if headers else None)
    )
