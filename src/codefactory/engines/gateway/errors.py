"""Model gateway errors.

GatewayError
 ├── GatewayConfigError   the gateway settings cannot work (a malformed upstream, a missing
 │                        transcript or CA file); raised at construction, before anything runs
 └── GatewayNotStarted    `url`/`egress_host`/`access` asked before `start()`
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base class for model gateway failures outside a single call (calls answer HTTP errors)."""


class GatewayConfigError(GatewayError):
    """The gateway's settings are unusable; the message names the setting and the fix."""


class GatewayNotStarted(GatewayError):
    """The gateway has no listener yet: call `ModelGateway.start()` first."""
