"""Trigger surface: turn a ticket, webhook or schedule into a `TriggerEvent`."""

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
