"""Where runs execute: worker threads in the `serve` process, fed by the durable queue."""

from codefactory.dispatch.queue import DeliveryQueue, QueuedDelivery

__all__ = ["DeliveryQueue", "QueuedDelivery"]
