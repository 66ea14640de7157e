"""OpenTelemetry traces of real runs (SQLite and bubblewrap, or PostgreSQL under
CODEFACTORY_TEST_DATABASE=postgresql): one span per step, in order, in one trace per run,
whichever process observed each transition; exported in memory, and over OTLP/HTTP to a
loopback collector."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from codefactory.config import Settings
from codefactory.domain import CheckResult, Proposal, Run, RunState, Task
from codefactory.factory import Factory, build_factory
from codefactory.observability.run_trails import RunTrail, StoreTrails
from codefactory.observability.settings import ObservabilitySettings
from codefactory.observability.tracing import (
    RunTracer,
    root_span_id_of,
    step_span_id_of,
    trace_id_of,
)
from codefactory.runs.tickets import accept_ticket
from codefactory.sandbox.port import Workspace
from tests.acceptance.conftest import TEMPLATE
from tests.conftest import data_dir_sharing_cache, sample_service

pytestmark = pytest.mark.usefixtures("bwrap_available")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Tracers:
    """Two tracers standing for two processes, each with its own in-memory exporter; the
    observer hands a run's transitions from the first to the second at `switch_at`."""

    def __init__(self, switch_at: RunState | None = None) -> None:
        self.factory: Factory | None = None
        self.exporters = (InMemorySpanExporter(), InMemorySpanExporter())
        self.tracers = tuple(RunTracer(SimpleSpanProcessor(e), self.trail) for e in self.exporters)
        self.switch_at = switch_at
        self.switched: set[str] = set()

    def trail(self, run_id: str) -> RunTrail | None:
        assert self.factory is not None
        return StoreTrails(self.factory.store.engine)(run_id)

    def __call__(self, run_id: str, state: RunState, reason: str) -> None:
        if state is self.switch_at:
            self.switched.add(run_id)  # the first process died; another resumed the run
        self.tracers[run_id in self.switched](run_id, state, reason)

    def spans(self, run_id: str) -> list[ReadableSpan]:
        exported = [
            *self.exporters[0].get_finished_spans(),
            *self.exporters[1].get_finished_spans(),
        ]
        return [
            s for s in exported if s.attributes and s.attributes["codefactory.run.id"] == run_id
        ]


@pytest.fixture
def tracers(tmp_path: Path, uv_cache: Path) -> Tracers:
    tracers = Tracers(switch_at=RunState.PROPOSING)
    data_dir = data_dir_sharing_cache(tmp_path / "data", uv_cache)
    tracers.factory = build_factory(Settings(data_dir=data_dir), observer=tracers)
    return tracers


def ns(at: datetime) -> int:
    return (at - EPOCH) // timedelta(microseconds=1) * 1000


def ticket(name: str) -> bytes:
    return (TEMPLATE / "tickets" / name).read_bytes()


def assert_steps(spans: Sequence[ReadableSpan], run: Run, steps: int) -> None:
    """`spans` are the run's first `steps` steps, in order, children of the run's root."""
    history = run.history
    assert [s.name for s in spans] == [h.state.value for h in history[:steps]]
    for index, span in enumerate(spans):
        entered, left = history[index], history[min(index + 1, len(history) - 1)]
        assert span.context is not None and span.parent is not None
        assert span.context.trace_id == trace_id_of(run.id)
        assert span.parent.span_id == root_span_id_of(run.id)
        assert (span.start_time, span.end_time) == (ns(entered.at), ns(left.at))
        assert span.attributes is not None
        assert span.attributes["codefactory.run.state"] == entered.state.value
        assert span.attributes["codefactory.run.reason"] == entered.reason
        assert span.attributes["codefactory.run.repository"] == run.repository


def test_a_run_is_one_trace_of_one_span_per_step_across_two_processes(
    tracers: Tracers, tmp_path: Path
) -> None:
    assert tracers.factory is not None
    repo = sample_service(tmp_path / "sample-service")
    run = accept_ticket(tracers.factory, payload=ticket("SVC-102.json"), repo=repo)
    assert run.state is RunState.IN_REVIEW, run.reason
    run = tracers.factory.store.require_run(run.id)
    spans = tracers.spans(run.id)
    # every step but the one the run rests in (in review: its span ends with the review)
    assert_steps(spans, run, len(run.history) - 1)
    first, second = (e.get_finished_spans() for e in tracers.exporters)
    assert first and second  # each "process" emitted part of the trace
    handed_over = [s for s in second if s.name == RunState.CONTEXT_READY.value]
    assert handed_over and handed_over[0].start_time == ns(run.history[3].at)  # from the store
    engines = {s.name: (s.attributes or {}).get("codefactory.run.engine") for s in spans}
    assert run.engine and engines["proposing"] == engines["packaged"] == run.engine
    trail = StoreTrails(tracers.factory.store.engine)(run.id)
    assert trail is not None  # span ids come from the run and the step's row: the same anywhere
    assert [s.context.span_id for s in spans if s.context] == [
        step_span_id_of(run.id, step.row_id) for step in trail.steps[: len(spans)]
    ]
    assert not [s for s in spans if s.name == "run"]  # no root until the run ends

    # transitions written without the observer (approved here) still get their spans from
    # the process that observes the next one
    with tracers.factory.store.atomic() as tx:
        tx.transition(run.id, RunState.APPROVED, reason="approved elsewhere")
    with tracers.factory.store.atomic() as tx:
        tx.transition(run.id, RunState.HANDED_OFF, reason="handed off")
    tracers(run.id, RunState.HANDED_OFF, "handed off")
    run = tracers.factory.store.require_run(run.id)
    spans = tracers.spans(run.id)
    root = spans.pop()
    assert_steps(spans, run, len(run.history))
    assert [s.name for s in spans[-3:]] == ["in_review", "approved", "handed_off"]
    assert root.name == "run" and root.end_time == ns(run.history[-1].at)


class RaisingEngine:
    name = "test:raising"
    version = "0"

    def propose(
        self,
        task: Task,
        workspace: Workspace,
        feedback: Sequence[CheckResult],
        session: object = None,
    ) -> Proposal:
        raise RuntimeError("model endpoint returned garbage")


def test_a_run_that_ends_closes_its_trace_with_the_outcome_and_the_root(
    tracers: Tracers, tmp_path: Path
) -> None:
    assert tracers.factory is not None
    tracers.factory.loop.engines = {"recipe:lint-fix": RaisingEngine()}
    repo = sample_service(tmp_path / "sample-service")
    run = accept_ticket(tracers.factory, payload=ticket("SVC-102.json"), repo=repo)
    assert run.state is RunState.FAILED
    run = tracers.factory.store.require_run(run.id)
    spans = tracers.spans(run.id)
    root = spans.pop()
    assert_steps(spans, run, len(run.history))
    assert spans[-1].start_time == spans[-1].end_time  # the outcome is an instant
    assert spans[-1].status.status_code is StatusCode.ERROR
    assert spans[-1].status.description == run.reason
    assert root.name == "run" and root.parent is None and root.context is not None
    assert (root.context.trace_id, root.context.span_id) == (
        trace_id_of(run.id),
        root_span_id_of(run.id),
    )
    assert (root.start_time, root.end_time) == (ns(run.history[0].at), ns(run.history[-1].at))
    assert root.attributes and root.attributes["codefactory.run.state"] == "failed"
    assert root.status.status_code is StatusCode.ERROR

    refused = accept_ticket(tracers.factory, payload=ticket("SVC-103.json"), repo=repo)
    assert refused.state is RunState.REFUSED
    names = [s.name for s in tracers.spans(refused.id)]
    assert names == ["received", "refused", "run"]
    assert trace_id_of(refused.id) != trace_id_of(run.id)


@contextmanager
def collector() -> Iterator[tuple[str, list[ExportTraceServiceRequest]]]:
    """A loopback OTLP/HTTP collector: decodes each POST /v1/traces (protobuf)."""
    received: list[ExportTraceServiceRequest] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            assert self.path == "/v1/traces"
            assert self.headers["Content-Type"] == "application/x-protobuf"
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            received.append(request)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_spans_are_exported_over_otlp_http_when_an_endpoint_is_set(tmp_path: Path) -> None:
    with collector() as (endpoint, received):
        observability = ObservabilitySettings(otlp_endpoint=endpoint + "/", service_name="cf-test")
        factory = build_factory(Settings(data_dir=tmp_path / "data", observability=observability))
        tracer = factory.loop.observer
        assert isinstance(tracer, RunTracer)
        run = accept_ticket(factory, payload=ticket("SVC-103.json"), repo=tmp_path)
        assert run.state is RunState.REFUSED
        assert tracer.provider.force_flush(10_000)
    spans = [
        (span, resource.resource)
        for request in received
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    assert [span.name for span, _ in spans] == ["received", "refused", "run"]
    for span, resource in spans:
        assert int.from_bytes(span.trace_id, "big") == trace_id_of(run.id)
        service = {a.key: a.value.string_value for a in resource.attributes}["service.name"]
        assert service == "cf-test"


def test_no_tracer_without_an_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    factory = build_factory(Settings(data_dir=tmp_path / "data"))
    assert not isinstance(factory.loop.observer, RunTracer)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector.internal:4318")
    assert Settings().observability.otlp_endpoint == "http://collector.internal:4318"
    monkeypatch.setenv("CODEFACTORY_OBSERVABILITY__OTLP_ENDPOINT", "http://other:4318")
    assert Settings().observability.otlp_endpoint == "http://other:4318"
