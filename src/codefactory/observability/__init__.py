"""Operating the factory: Prometheus metrics from the store, OpenTelemetry traces of runs,
JSON logs with the run id (docs/operations.md)."""

from codefactory.observability.settings import ObservabilitySettings

__all__ = ["ObservabilitySettings"]
