"""`GET /metrics`: the store's metrics in Prometheus' text exposition format (version 0.0.4),
behind a static bearer token when one is set (RFC 6750 §2.1 header, compared in constant
time)."""

from __future__ import annotations

import hmac
import logging

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.responses import Response

from codefactory.observability.metrics import StoreCollector
from codefactory.observability.settings import ObservabilitySettings

log = logging.getLogger(__name__)


class MetricsEndpoint:
    """One process's scrape target: a private registry holding only the store collector (no
    process or platform collectors: the figures are the factory's, not this process's)."""

    def __init__(self, engine: Engine, settings: ObservabilitySettings) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(StoreCollector(engine))
        self._token = settings.metrics_token.get_secret_value().encode()

    @property
    def protected(self) -> bool:
        """Whether a scraper must send the metrics token."""
        return bool(self._token)

    def admits(self, authorization: str | None) -> bool:
        """Whether `authorization` (the request's header) carries the token, if one is set."""
        if not self._token:
            return True
        scheme, _, token = (authorization or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.strip().encode(), self._token
        )

    def scrape(self) -> Response:
        """The exposition of every metric, read from the store now, labelled text format
        0.0.4: every name is a classic Prometheus name, so the body is the same in 1.0.0, and
        Prometheus 2 and 3 both parse it. 503 when the store cannot be read (Prometheus
        records the scrape as failed: `up` is 0); the error itself, which may name the
        database's host, goes to the log, not to the scraper."""
        try:
            body = generate_latest(self.registry)
        except SQLAlchemyError as err:
            log.warning("GET /metrics: the store cannot be read: %s", err)
            reason = f"the store cannot be read ({type(err).__name__}); see the factory's log\n"
            return Response(reason, status_code=503, media_type="text/plain")
        return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)


def refused() -> Response:
    """401 for a scrape without the metrics token (RFC 6750 §3)."""
    return Response(
        "GET /metrics needs the metrics token: Authorization: Bearer <token>"
        " (CODEFACTORY_OBSERVABILITY__METRICS_TOKEN)\n",
        status_code=401,
        media_type="text/plain",
        headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
    )
