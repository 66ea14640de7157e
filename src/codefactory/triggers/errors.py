"""Trigger errors.

TriggerError
 ├── TicketInvalid        a CLI ticket we cannot read (bad JSON, missing fields)
 ├── DeliveryInvalid      an authenticated delivery whose body is not what its sender sends (400)
 └── DeliveryRejected     a delivery refused before its content is trusted
      ├── SignatureInvalid    no secret, a missing or wrong signature or token (401)
      ├── DeliveryStale       signed too long ago or in the future: a replay (401)
      ├── PayloadTooLarge     the body is over the configured limit (413)
      └── RateLimited         the client used up its rejections this minute (429)

Every `DeliveryRejected` and `DeliveryInvalid` has a `code` (`signature`, `stale`,
`oversized`, `rate-limited`, `malformed`, `json-depth`, `control-characters`): the reason the
aggregated `webhook-rejections` audit events are counted under.
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

    def __init__(
        self, source: str, delivery_id: str, reason: str, *, code: str = "malformed"
    ) -> None:
        super().__init__(f"invalid {source} delivery {_id(delivery_id)}: {reason}")
        self.source = source
        self.delivery_id = delivery_id
        self.reason = reason
        self.code = code


class DeliveryRejected(TriggerError):
    """A delivery refused before its content is read; `status` is the HTTP answer."""

    status = 401
    code = "rejected"

    def __init__(self, source: str, delivery_id: str, reason: str) -> None:
        super().__init__(f"{source} delivery {_id(delivery_id)} rejected: {reason}")
        self.source = source
        self.delivery_id = delivery_id
        self.reason = reason


def _id(delivery_id: str) -> str:
    """An untrusted delivery id as shown in a message: printable, at most 128 characters."""
    if not delivery_id:
        return "(no id)"
    shown = delivery_id.encode("unicode_escape").decode("ascii")
    return shown[:128] + ("…" if len(shown) > 128 else "")


class SignatureInvalid(DeliveryRejected):
    """The delivery's signature or token does not prove it comes from `source`."""

    code = "signature"


class DeliveryStale(DeliveryRejected):
    """The delivery was signed outside the replay window."""

    code = "stale"

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
    code = "oversized"

    def __init__(self, source: str, size: int, limit: int) -> None:
        super().__init__(source, "", f"body of {size}+ bytes is over the {limit}-byte limit")
        self.size = size
        self.limit = limit


class RateLimited(DeliveryRejected):
    """The client sent more rejected deliveries this minute than its budget allows."""

    status = 429
    code = "rate-limited"

    def __init__(self, source: str, per_minute: int) -> None:
        super().__init__(
            source,
            "",
            f"more than {per_minute} rejected deliveries from this client this minute: "
            "try again in a minute",
        )
        self.per_minute = per_minute
