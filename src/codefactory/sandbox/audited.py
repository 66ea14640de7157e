"""Audit wrapper around any sandbox: every egress attempt and every limit hit becomes an event.

    egress-attempted   host, port, phase, allowed, reason, method   (every attempt, allowed or not)
    sandbox-limit-hit  limit, phase, command, exit_code, duration_s

Events are handed to a writer thread rather than written in the caller's thread: a command
may run while the loop holds a store transaction (context gathering does), and the embedded
store allows one writer at a time. `destroy` waits until the workspace's events are written.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from codefactory.audit.events import EgressAttempted, SandboxLimitHit
from codefactory.domain import AuditEvent, Change, ExecResult
from codefactory.sandbox.egress import EgressAttempt, EgressListener
from codefactory.sandbox.limits import Limits
from codefactory.sandbox.port import Phase, Sandbox, Workspace

AuditSink = Callable[[AuditEvent], object]
"""Writes one audit event (a transaction of its own: `RunRepository.append`)."""

ACTOR = "sandbox"
"""Who the events of this wrapper are by."""


class _Writer:
    """One thread writing events in the order they came."""

    def __init__(self, sink: AuditSink) -> None:
        self._sink = sink
        self._queue: queue.Queue[AuditEvent] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.failures: list[str] = []

    def put(self, event: AuditEvent) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._drain, name="audit", daemon=True)
                self._thread.start()
        self._queue.put(event)

    def _drain(self) -> None:
        while True:
            event = self._queue.get()
            try:
                self._sink(event)
            except Exception as err:  # noqa: BLE001 - kept, and raised by `flush`
                self.failures.append(f"{event.name} for {event.run_id}: {err}")
            finally:
                self._queue.task_done()

    def flush(self) -> None:
        """Wait until every event handed over so far is written."""
        self._queue.join()
        if self.failures:
            failed, self.failures = self.failures, []
            raise RuntimeError(f"audit events could not be written: {'; '.join(failed)}")


class AuditedSandbox:
    """Wraps a sandbox; its workspaces report egress attempts and limit hits to `sink`."""

    def __init__(self, inner: Sandbox, sink: AuditSink) -> None:
        self.inner = inner
        self._writer = _Writer(sink)

    def provision(
        self,
        *,
        repo: Path,
        commit: str,
        run_id: str,
        on_egress: EgressListener | None = None,
    ) -> Workspace:
        def egress(attempt: EgressAttempt) -> None:
            self._writer.put(
                EgressAttempted(actor=ACTOR, run_id=attempt.run_id, **attempt.audit_data())
            )
            if on_egress is not None:
                on_egress(attempt)

        try:
            workspace = self.inner.provision(
                repo=repo, commit=commit, run_id=run_id, on_egress=egress
            )
        except BaseException:
            with contextlib.suppress(RuntimeError):
                self._writer.flush()  # an image build's egress is recorded even when it failed
            raise
        self._writer.flush()
        return AuditedWorkspace(workspace, self._writer)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class AuditedWorkspace:
    """Delegates to its workspace, recording each limit hit."""

    def __init__(self, inner: Workspace, writer: _Writer) -> None:
        self.inner = inner
        self.run_id = inner.run_id
        self.base_commit = inner.base_commit
        self._writer = writer

    def exec(
        self,
        command: Sequence[str],
        *,
        phase: Phase,
        timeout_s: float = 300.0,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        limits: Limits | None = None,
        allow_hosts: Sequence[str] = (),
        mounts: Mapping[str, Path] | None = None,
        resolve: Mapping[str, str] | None = None,
    ) -> ExecResult:
        # passed on only when given: a wrapped workspace of an older shape still works
        extra: dict[str, Any] = {}
        if mounts:
            extra["mounts"] = mounts
        if resolve:
            extra["resolve"] = resolve
        result = self.inner.exec(
            command,
            phase=phase,
            timeout_s=timeout_s,
            stdin=stdin,
            env=env,
            limits=limits,
            allow_hosts=allow_hosts,
            **extra,
        )
        if result.limit_hit:
            self._writer.put(
                SandboxLimitHit(
                    actor=ACTOR,
                    run_id=self.run_id,
                    limit=result.limit_hit,
                    phase=phase.value,
                    command=list(command)[:20],
                    exit_code=result.exit_code,
                    duration_s=round(result.duration_s, 3),
                )
            )
        return result

    def read_file(self, path: str, *, phase: Phase = Phase.ENGINE) -> bytes | None:
        return self.inner.read_file(path, phase=phase)

    def write_file(self, path: str, content: bytes) -> None:
        self.inner.write_file(path, content)

    def changes(self) -> Change:
        return self.inner.changes()

    def installed_dependencies(self) -> list[str] | None:
        """What the inner workspace's image installed (see `setup.PrewarmedWorkspace`)."""
        probe = getattr(self.inner, "installed_dependencies", None)
        return probe() if callable(probe) else None

    def destroy(self) -> None:
        try:
            self.inner.destroy()
        finally:
            self._writer.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
