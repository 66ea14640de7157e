"""The context engine's connectors, one vendor or source per module."""
