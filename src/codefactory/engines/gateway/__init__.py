"""The model gateway: the HTTPS endpoint through which every language-model engine reaches
its model, tied to a run by a short-lived credential, budgeted, recorded and replayable."""

from __future__ import annotations

from typing import TYPE_CHECKING

from codefactory.lazy import lazy_exports

if TYPE_CHECKING:
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

__getattr__ = lazy_exports(
    __name__,
    globals(),
    {
        "GatewayConfigError": "codefactory.engines.gateway.errors",
        "GatewayError": "codefactory.engines.gateway.errors",
        "GatewayNotStarted": "codefactory.engines.gateway.errors",
        "WireProtocol": "codefactory.engines.gateway.protocols",
        "CallSink": "codefactory.engines.gateway.records",
        "ModelCall": "codefactory.engines.gateway.records",
        "Outcome": "codefactory.engines.gateway.records",
        "ModelGateway": "codefactory.engines.gateway.service",
        "ensure_certificates": "codefactory.engines.gateway.tls",
        "ssl_context_from": "codefactory.engines.gateway.tls",
    },
)
