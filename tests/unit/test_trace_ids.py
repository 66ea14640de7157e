"""A run's trace and span ids are fixed by its run id: every process, and every version of
the factory during a rolling upgrade, must put a run's spans in the same trace."""

from __future__ import annotations

import hashlib

from codefactory.observability.tracing import root_span_id_of, step_span_id_of, trace_id_of

RUN = "r-20261130-083101-5c1a9e"


def test_ids_are_sha256_of_the_run_id_and_never_change() -> None:
    assert format(trace_id_of(RUN), "032x") == "c71ec842263ff52135712254f03458dd"
    assert format(root_span_id_of(RUN), "016x") == "ae165fed47d5fa0e"
    assert format(step_span_id_of(RUN, 7), "016x") == "b07aaedca5059a8a"
    digest = hashlib.sha256(b"codefactory\0trace\0" + RUN.encode()).hexdigest()
    assert format(trace_id_of(RUN), "032x") == digest[:32]


def test_ids_differ_between_runs_and_steps_and_fit_w3c_trace_context() -> None:
    other = "r-20261130-083101-5c1a9f"
    assert trace_id_of(RUN) != trace_id_of(other)
    assert root_span_id_of(RUN) != root_span_id_of(other)
    assert len({step_span_id_of(RUN, row) for row in range(1000)} | {root_span_id_of(RUN)}) == 1001
    assert 0 < trace_id_of(RUN) < 2**128 and 0 < root_span_id_of(RUN) < 2**64
