"""Trigger surface: turn a ticket, webhook or schedule into a `TriggerEvent`."""

from codefactory.triggers.errors import (
    DeliveryInvalid,
    DeliveryRejected,
    DeliveryStale,
    PayloadTooLarge,
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
    "SignatureInvalid",
    "TicketInvalid",
    "TriggerError",
    "TriggerSource",
    "WebhookSource",
]
