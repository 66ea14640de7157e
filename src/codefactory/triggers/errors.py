"""Trigger errors.

TriggerError
 ├── TicketInvalid        a CLI ticket we cannot read (bad JSON, missing fields)
 ├── DeliveryInvalid      an authenticated delivery whose body is not what its sender sends (400)
 └── DeliveryRejected     a delivery refused before its content is trusted
      ├── SignatureInvalid    no secret, a missing or wrong signature or token (401)
      ├── DeliveryStale       signed too long ago or in the future: a replay (401)
      └── PayloadTooLarge     the body is over the configured limit (413)
"""

from __future__ import annotations


class TriggerError(Exception):
    """Base class for trigger intake failures."""


class TicketInvalid(TriggerError):
    """A ticket or delivery that cannot be parsed; names the source and what is wrong."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"invalid {source} ticket: {reason}")
        self.source = source
        self.reason = reason


class DeliveryInvalid(TriggerError):
    """The body of an authenticated delivery is malformed; `reason` says where."""

    def __init__(self, source: str, delivery_id: str, reason: str) -> None:
        super().__init__(f"invalid {source} delivery {delivery_id or '(no id)'}: {reason}")
        self.source = source
        self.delivery_id = delivery_id
        self.reason = reason


class DeliveryRejected(TriggerError):
    """A delivery refused before its content is read; `status` is the HTTP answer."""

    status = 401

    def __init__(self, source: str, delivery_id: str, reason: str) -> None:
        super().__init__(f"{source} delivery {delivery_id or '(no id)'} rejected: {reason}")
        self.source = source
        self.delivery_id = delivery_id
        self.reason = reason


class SignatureInvalid(DeliveryRejected):
    """The delivery's signature or token does not prove it comes from `source`."""


class DeliveryStale(DeliveryRejected):
    """The delivery was signed outside the replay window."""

    def __init__(self, source: str, delivery_id: str, skew_s: float, window_s: float) -> None:
        super().__init__(
            source,
            delivery_id,
            f"sent {abs(skew_s):.0f} s {'ago' if skew_s >= 0 else 'in the future'}, "
            f"outside the {window_s:.0f} s replay window",
        )
        self.skew_s = skew_s
        self.window_s = window_s


class PayloadTooLarge(DeliveryRejected):
    """The body is larger than `limit` bytes."""

    status = 413

    def __init__(self, source: str, size: int, limit: int) -> None:
        super().__init__(source, "", f"body of {size}+ bytes is over the {limit}-byte limit")
        self.size = size
        self.limit = limit
