"""Settings of the web app: OpenID Connect login, trusted hosts, sessions and server limits."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from codefactory.hosts import is_loopback

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
DEFAULT_ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")
"""Asymmetric JWS algorithms a token may be signed with (RFC 8725 §3.1): never `none`,
never an HMAC algorithm whose key a client could know."""


class ServerLimits(BaseModel):
    """How long a connection may take to send its request, and how many may be open."""

    model_config = ConfigDict(extra="forbid")

    header_timeout_s: float = Field(default=10.0, gt=0)
    """A connection's request line and headers must arrive within this many seconds (from
    the connection, or from its first byte after a keep-alive pause), else it is closed."""
    body_timeout_s: float = Field(default=30.0, gt=0)
    """A request's body must arrive within this many seconds of its headers, else the
    connection is closed."""
    keep_alive_s: int = Field(default=5, gt=0)
    """An idle keep-alive connection is closed after this many seconds."""
    max_connections: int = Field(default=256, ge=2)
    """Open connections at most; one more closes a connection of the client holding the most
    (an idle one first, then the slowest sender), never one whose request the app is serving
    while another can go."""
    max_connections_per_client: int = Field(default=32, ge=1)
    """Open connections from one client address at most (a trusted proxy's own connections
    are exempt: it speaks for many); one more closes that client's idle or slowest one."""
    min_rate_bytes_s: float = Field(default=256.0, ge=0)
    """Request headers and bodies must arrive at least this fast on average (bytes per
    second) once `rate_grace_s` has passed, else the connection is closed (Apache's
    `mod_reqtimeout` MinRate); 0 turns the check off."""
    rate_grace_s: float = Field(default=2.0, gt=0)
    """Seconds a request's headers or body may take before `min_rate_bytes_s` applies."""
    max_header_bytes: int = Field(default=16384, ge=1024)
    """A request line and headers larger than this get 400 (h11's incomplete event size)."""


class WebSettings(BaseModel):
    """Who may use the web app and API, on which host names, and the server's limits."""

    model_config = ConfigDict(extra="forbid")

    oidc_issuer: str | None = None
    """The bank's OpenID Connect provider (its `issuer`, e.g. `https://login.bank.example`);
    https, or http on a loopback host only. Unset, every route but the webhooks, health and
    published keys answers 401 (fail closed)."""
    oidc_client_id: str = "codefactory"
    """The factory's client id at the provider: the `aud` every token must carry."""
    oidc_client_secret: SecretStr | None = None
    """The factory's client secret (never logged); or `oidc_client_secret_file`. Unset, the
    factory is a public client (PKCE only)."""
    oidc_client_secret_file: Path | None = None
    """A file holding the client secret (one line)."""
    oidc_cli_client_id: str | None = None
    """The public client id `codefactory login` uses (a native app, RFC 8252); tokens issued
    to it are accepted too. Unset, the CLI uses `oidc_client_id`."""
    oidc_scopes: str = "openid email profile"
    """Scopes asked for at login."""
    oidc_algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    """JWS algorithms accepted on ID and access tokens (RFC 8725 allow-list)."""
    public_url: str | None = None
    """The URL people reach the factory at (`https://factory.bank.example`): the login
    redirect URI is `<public_url>/auth/callback`, and the session cookie is `Secure` when it is
    https. Unset, the request's own (trusted) host is used."""
    trusted_hosts: tuple[str, ...] = ()
    """Host names the app answers for (`Host` header); any other gets 400. Empty: the host
    `serve` binds to, `localhost` and `127.0.0.1`, and `public_url`'s host."""
    session_secret_file: Path | None = None
    """A file holding the key that signs session cookies; unset, a 0600 file
    `<data_dir>/web-session.key` is made on first use."""
    session_lifetime_s: int = Field(default=8 * 3600, gt=0)
    """A browser session ends this many seconds after login, at `/logout`, or when `serve`
    stops (sessions are kept in the `serve` process)."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses or networks (`10.0.0.5`, `10.0.0.0/24`) of reverse proxies whose
    `X-Forwarded-For` and `X-Forwarded-Proto` are believed. Empty (the default), forwarded
    headers are ignored: the client is the socket's peer and the scheme the socket's."""
    limits: ServerLimits = Field(default_factory=ServerLimits)

    @field_validator("oidc_issuer")
    @classmethod
    def _secure_issuer(cls, value: str | None) -> str | None:
        """OpenID Connect Discovery §3: the issuer is an https URL; http only on loopback."""
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        if parts.query or parts.fragment or not parts.hostname:
            raise ValueError(f"issuer {value!r} must be a URL without query or fragment")
        if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname)):
            return value.rstrip("/")
        raise ValueError(f"issuer {value!r} must be https (http only on a loopback address)")

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Each entry an IP address or network; never a wildcard that trusts everyone."""
        for entry in value:
            try:
                network = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted proxy {entry!r} is not an IP address or network"
                ) from None
            if network.prefixlen == 0:
                raise ValueError(f"trusted proxy {entry!r} would trust every address")
        return value

    @field_validator("oidc_algorithms")
    @classmethod
    def _asymmetric(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        refused = [alg for alg in value if alg.lower() == "none" or alg.startswith("HS")]
        if refused or not value:
            raise ValueError(f"algorithms {refused or value} refused: asymmetric ones only")
        return value

    def audiences(self) -> tuple[str, ...]:
        """The `aud` values a token may carry: the web client's and the CLI's."""
        return tuple(dict.fromkeys([self.oidc_client_id, self.cli_client_id()]))

    def cli_client_id(self) -> str:
        return self.oidc_cli_client_id or self.oidc_client_id

    def hosts_for(self, bound_host: str | None) -> list[str]:
        """The trusted `Host` names when serving on `bound_host`."""
        if self.trusted_hosts:
            return list(self.trusted_hosts)
        hosts = ["localhost", "127.0.0.1"]
        if bound_host and bound_host not in ("0.0.0.0", "::"):
            hosts.append(bound_host)
        if self.public_url and urlsplit(self.public_url).hostname:
            hosts.append(urlsplit(self.public_url).hostname or "")
        return list(dict.fromkeys(hosts))


def is_trusted_proxy(address: str, proxies: tuple[str, ...]) -> bool:
    """Whether the peer `address` is one of `proxies` (addresses or networks)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(entry, strict=False) for entry in proxies)
