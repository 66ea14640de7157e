"""Context engine: connectors that gather what an engine needs, each read classified."""

from codefactory.context.port import Connector, ContextItem

__all__ = ["ContextItem", "Connector"]
