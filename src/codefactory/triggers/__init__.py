"""Trigger surface: turn a ticket, webhook or schedule into a `TriggerEvent`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from codefactory.lazy import lazy_exports

if TYPE_CHECKING:
    from codefactory.triggers.errors import (
        DeliveryInvalid,
        DeliveryRejected,
        DeliveryStale,
        PayloadTooLarge,
        RateLimited,
        SignatureInvalid,
        TicketInvalid,
        TriggerError,
    )
    from codefactory.triggers.port import Delivery, ParsedDelivery, TriggerSource, WebhookSource

__all__ = [
    "Delivery",
    "DeliveryInvalid",
    "DeliveryRejected",
    "DeliveryStale",
    "ParsedDelivery",
    "PayloadTooLarge",
    "RateLimited",
    "SignatureInvalid",
    "TicketInvalid",
    "TriggerError",
    "TriggerSource",
    "WebhookSource",
]

__getattr__ = lazy_exports(
    __name__,
    globals(),
    {
        "DeliveryInvalid": "codefactory.triggers.errors",
        "DeliveryRejected": "codefactory.triggers.errors",
        "DeliveryStale": "codefactory.triggers.errors",
        "PayloadTooLarge": "codefactory.triggers.errors",
        "RateLimited": "codefactory.triggers.errors",
        "SignatureInvalid": "codefactory.triggers.errors",
        "TicketInvalid": "codefactory.triggers.errors",
        "TriggerError": "codefactory.triggers.errors",
        "Delivery": "codefactory.triggers.port",
        "ParsedDelivery": "codefactory.triggers.port",
        "TriggerSource": "codefactory.triggers.port",
        "WebhookSource": "codefactory.triggers.port",
    },
)
