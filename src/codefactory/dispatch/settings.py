"""Settings of run execution: where runs execute and how their owners prove they are alive."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class DispatchSettings(BaseModel):
    """`CODEFACTORY_DISPATCH__*`: the executor, its broker, leases and heartbeats."""

    model_config = ConfigDict(extra="forbid")

    executor: Literal["threads", "celery"] = "threads"
    """`threads`: worker threads inside `codefactory serve` (the embedded default);
    `celery`: `codefactory worker` processes on any number of machines, fed through
    `broker_url`, with `serve --workers 0` taking deliveries."""
    broker_url: SecretStr = SecretStr("")
    """The Celery broker (`redis://host:6379/0`, `amqp://user:pass@host:5672//`); required
    with the `celery` executor. Secret: it may carry a password."""
    heartbeat_s: float = Field(default=5.0, gt=0)
    """Seconds between a worker's heartbeats on the leases of the runs it drives. A run whose
    owner stops heartbeating is taken over within twice this."""
    lease_s: float = Field(default=0.0, ge=0)
    """A lease's length from its last heartbeat; 0 means 1.5 × `heartbeat_s`. Must exceed the
    heartbeat interval by more than the workers' clock skew."""
    requeue_after_s: float = Field(default=60.0, gt=0)
    """A queued delivery no worker started within this many seconds is published again
    (a broker that lost its message, say); the run's lease keeps a duplicate from running."""

    @model_validator(mode="after")
    def _lease_longer_than_heartbeat(self) -> DispatchSettings:
        if self.lease_s and self.lease_s <= self.heartbeat_s:
            raise ValueError(
                f"dispatch.lease_s ({self.lease_s}) must exceed dispatch.heartbeat_s "
                f"({self.heartbeat_s}): a lease would expire between two heartbeats"
            )
        return self

    @property
    def lease_seconds(self) -> float:
        """The lease's length in seconds (`lease_s`, or 1.5 × `heartbeat_s`)."""
        return self.lease_s or 1.5 * self.heartbeat_s

    @property
    def scan_s(self) -> float:
        """How often a worker looks for runs to take over: a quarter of a heartbeat, so with
        the default lease a takeover starts at most `lease_seconds + scan_s` = 1.75 ×
        `heartbeat_s` after the owner's last beat."""
        return self.heartbeat_s / 4
