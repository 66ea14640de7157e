"""Stand-ins for the vendor services the context connectors read."""
