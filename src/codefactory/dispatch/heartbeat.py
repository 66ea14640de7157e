"""One thread per worker process that renews the leases of the runs the process drives."""

from __future__ import annotations

import logging
import threading
import time

from codefactory.store.leases import Lease, RunLeases, mark_lost

log = logging.getLogger("codefactory.dispatch")


class Heartbeats:
    """Every `interval_s` seconds, extend each held lease (`RunLeases.heartbeat`); a lease
    found lost is dropped and logged (the run's next write fails with `LeaseLost`)."""

    def __init__(self, leases: RunLeases, *, interval_s: float) -> None:
        self.leases = leases
        self.interval_s = interval_s
        self._held: dict[tuple[str, str], Lease] = {}
        self._renewed: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, lease: Lease) -> None:
        with self._lock:
            self._held[(lease.run_id, lease.owner)] = lease
            self._renewed[(lease.run_id, lease.owner)] = time.monotonic()

    def drop(self, lease: Lease) -> None:
        with self._lock:
            self._held.pop((lease.run_id, lease.owner), None)
            self._renewed.pop((lease.run_id, lease.owner), None)

    def held(self) -> list[Lease]:
        with self._lock:
            return list(self._held.values())

    def beat(self) -> None:
        """Renew every held lease once. A lease found taken over, or not renewed for a whole
        lease length (the store unreachable), is lost: dropped and marked
        (`store.leases.mark_lost`), which stops the run's running engine commands."""
        for lease in self.held():
            key = (lease.run_id, lease.owner)
            try:
                alive = self.leases.heartbeat(lease)
            except Exception:  # noqa: BLE001 - a busy store must not stop the heartbeat
                log.exception("heartbeat on run %s failed", lease.run_id)
                with self._lock:
                    renewed = self._renewed.get(key, time.monotonic())
                if time.monotonic() - renewed < self.leases.lease_s:
                    continue
                alive, why = False, "its lease could not be renewed before it expired"
            else:
                why = "another worker took its lease over"
            if alive:
                with self._lock:
                    self._renewed[key] = time.monotonic()
                continue
            log.warning("lease on run %s lost by %s: %s", lease.run_id, lease.owner, why)
            mark_lost(lease, f"run {lease.run_id} stopped here: {why}")
            self.drop(lease)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="heartbeats", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.wait(self.interval_s):
            self.beat()
