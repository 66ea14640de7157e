"""Trigger surface: turn a ticket, webhook or schedule into a `TriggerEvent`."""

from codefactory.triggers.errors import TicketInvalid, TriggerError
from codefactory.triggers.port import TriggerSource

__all__ = ["TicketInvalid", "TriggerError", "TriggerSource"]
