"""The model gateway: the HTTPS endpoint through which every language-model engine reaches
its model, tied to a run by a short-lived credential, budgeted, recorded and replayable."""

from codefactory.engines.gateway.errors import (
    GatewayConfigError,
    GatewayError,
    GatewayNotStarted,
)
from codefactory.engines.gateway.protocols import WireProtocol
from codefactory.engines.gateway.records import CallSink, ModelCall, Outcome
from codefactory.engines.gateway.service import ModelGateway
from codefactory.engines.gateway.tls import ensure_certificates, ssl_context_from

__all__ = [
    "CallSink",
    "GatewayConfigError",
    "GatewayError",
    "GatewayNotStarted",
    "ModelCall",
    "ModelGateway",
    "Outcome",
    "WireProtocol",
    "ensure_certificates",
    "ssl_context_from",
]
