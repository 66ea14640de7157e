"""A vendor client from its settings: the credential read from its file on the host, sent
the way the vendor documents it. Nothing here is ever passed to a sandbox."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

from codefactory.context.errors import SourceUnauthorized
from codefactory.context.http import DEFAULT_MAX_BYTES, VendorClient
from codefactory.context.port import Scope
from codefactory.context.settings import (
    ContextSettings,
    DatadogSettings,
    ServiceSettings,
    SourceSettings,
)
from codefactory.secret_files import SecretUnreadable, read_secret


def _secret(connector: str, path: Path | None, what: str) -> str:
    try:
        return read_secret(path, what)
    except SecretUnreadable as err:
        raise SourceUnauthorized(connector, str(err)) from None


def auth_headers(connector: str, service: ServiceSettings) -> dict[str, str]:
    """`Authorization` for `service`: Basic `user:token` when `user` is set (Atlassian
    Cloud, ServiceNow basic auth), else `Bearer token` (Data Center personal access tokens,
    Sentry auth tokens, ServiceNow OAuth). Datadog: its two key headers.

    Raises `SourceUnauthorized` when the credential file is missing, unreadable or empty."""
    if isinstance(service, DatadogSettings):
        return {
            "DD-API-KEY": _secret(connector, service.token_file, "API key"),
            "DD-APPLICATION-KEY": _secret(
                connector, service.application_key_file, "application key"
            ),
        }
    token = _secret(connector, service.token_file, "token")
    if service.user:
        pair = base64.b64encode(f"{service.user}:{token}".encode()).decode("ascii")
        return {"Authorization": f"Basic {pair}"}
    return {"Authorization": f"Bearer {token}"}


def vendor_client(
    connector: str, service: ServiceSettings, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> VendorClient:
    """The client `connector` talks to `service` with (credential read now)."""
    return VendorClient(
        connector=connector,
        base_url=service.base_url,
        headers=auth_headers(connector, service),
        timeout_s=service.timeout_s,
        max_bytes=max_bytes,
        verify=str(service.ca_file) if service.ca_file else True,
    )


@dataclass(frozen=True, kw_only=True)
class SourceParts:
    """What every vendor connector is built from: its client, scope, class and item cap."""

    client: VendorClient
    scope: Scope
    data_class: str
    max_item_chars: int


def source_parts(
    connector: str,
    scope_kind: str,
    service: ServiceSettings,
    source: SourceSettings,
    context: ContextSettings,
) -> SourceParts | None:
    """The parts of `connector` from its instance (`service`) and its source settings;
    None when the instance has no base URL or the source no scope (the connector is off).
    Reads the credential now (`SourceUnauthorized` when it cannot be read)."""
    if not service.base_url or not source.scope:
        return None
    return SourceParts(
        client=vendor_client(connector, service, max_bytes=context.max_response_bytes),
        scope=Scope(kind=scope_kind, values=tuple(source.scope)),
        data_class=source.data_class,
        max_item_chars=context.max_item_chars,
    )
