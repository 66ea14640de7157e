"""The gateway's upstream, from `GatewaySettings.upstream`, and where each call goes there.

- `replay:PATH`: the replay upstream in-process (`build_replay_app(PATH)` through
  `httpx.ASGITransport`), same path, no key.
- `openai:https://HOST/v1`: key as `Authorization: Bearer`; `/v1/X` → `https://HOST/v1/X`.
- `anthropic:https://HOST`: key as `x-api-key`; `/v1/X?Q` → `https://HOST/v1/X?Q`; the
  caller's `anthropic-version` and vetted `anthropic-beta` values pass through.
- `azure:https://HOST/openai/deployments/NAME[?api-version=V]`: key as `api-key`;
  chat → `https://HOST/openai/deployments/NAME/chat/completions?api-version=V`,
  `/v1/responses` → `https://HOST/openai/responses?api-version=V`,
  `/v1/models` → `https://HOST/openai/models?api-version=V`.
- `azure:https://HOST/openai/v1` (Azure's v1 API): key as `api-key`;
  `/v1/X` → `https://HOST/openai/v1/X`.

Azure's default `api-version` is `DEFAULT_AZURE_API_VERSION`; Azure serves no Anthropic
Messages, so `/v1/messages` to an Azure upstream is answered 404 by the gateway. Caller
query strings are kept (`?beta=true`), except an Azure-style caller's `api-version`. Plain
`http://` is accepted only for a loopback host (a local stand-in), never to send a key
across a network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from codefactory.engines.gateway.errors import GatewayConfigError
from codefactory.engines.gateway.protocols import Endpoint, WireProtocol

DEFAULT_AZURE_API_VERSION = "2024-10-21"
REPLAY_BASE = "http://replay.invalid"
ACCEPTED_FORMS = (
    "replay:PATH (a transcript file), openai:https://HOST/v1, anthropic:https://HOST, "
    "azure:https://HOST/openai/deployments/NAME[?api-version=V] or azure:https://HOST/openai/v1"
)
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_DEPLOYMENT = re.compile(r"^(?P<root>.*)/openai/deployments/(?P<name>[^/]+)/?$")


@dataclass(frozen=True, kw_only=True)
class Upstream:
    """A parsed upstream: its kind, base URL and, for Azure, deployment and API version."""

    kind: str
    """`replay`, `openai`, `anthropic` or `azure`."""
    base: str
    """The URL calls are built on (for `replay`, a name only the in-process transport sees)."""
    replay_path: Path | None = None
    deployment: str = ""
    api_version: str = ""

    @property
    def label(self) -> str:
        """The setting as written, for records (it never holds the key)."""
        return f"replay:{self.replay_path}" if self.replay_path else f"{self.kind}:{self.base}"

    def url_for(self, endpoint: Endpoint) -> str | None:
        """The upstream URL of a call, or None when this upstream does not serve it."""
        query = f"?{endpoint.query}" if endpoint.query else ""
        if self.kind in ("replay", "anthropic"):
            return f"{self.base}{endpoint.path}{query}"
        if self.kind == "openai" or not self.deployment:
            return f"{self.base}{endpoint.path.removeprefix('/v1')}{query}"
        return self._azure_deployment_url(endpoint)

    def _azure_deployment_url(self, endpoint: Endpoint) -> str | None:
        params = [("api-version", self.api_version), *parse_qsl(endpoint.query)]
        root = self.base.split("/openai/deployments/")[0]
        paths = {
            WireProtocol.OPENAI_CHAT: f"{self.base}/chat/completions",
            WireProtocol.OPENAI_RESPONSES: f"{root}/openai/responses",
            WireProtocol.MODELS: f"{root}/openai/models",
        }
        path = paths.get(endpoint.protocol)
        return f"{path}?{urlencode(params)}" if path else None

    def key_headers(self, key: str) -> dict[str, str]:
        """The headers that carry the upstream's key, the way its provider expects it."""
        if not key or self.kind == "replay":
            return {}
        if self.kind == "anthropic":
            return {"x-api-key": key}
        if self.kind == "azure":
            return {"api-key": key}
        return {"authorization": f"Bearer {key}"}


def _checked_url(kind: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise GatewayConfigError(
            f"upstream {kind}:{url}: not an http(s) URL with a host; accepted: {ACCEPTED_FORMS}"
        )
    if parts.username or parts.password:
        raise GatewayConfigError(
            f"upstream {kind}:...: credentials in the URL; set CODEFACTORY_GATEWAY__UPSTREAM_KEY"
        )
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise GatewayConfigError(
            f"upstream {kind}:{url}: plain http only for a loopback host; use https"
        )
    return url


def _azure(url: str) -> Upstream:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    base = f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")
    deployment = _DEPLOYMENT.match(base)
    if deployment is None and not base.endswith("/openai/v1"):
        raise GatewayConfigError(
            f"upstream azure:{url}: the path must end /openai/deployments/NAME or /openai/v1; "
            f"accepted: {ACCEPTED_FORMS}"
        )
    return Upstream(
        kind="azure",
        base=base,
        deployment=deployment.group("name") if deployment else "",
        api_version=query.get("api-version", DEFAULT_AZURE_API_VERSION),
    )


def parse_upstream(setting: str) -> Upstream | None:
    """The upstream named by `setting`; None for an empty setting (no upstream).

    Raises `GatewayConfigError` naming the accepted forms for anything else, and for a
    `replay:` path that is not a file."""
    setting = setting.strip()
    if not setting:
        return None
    kind, separator, rest = setting.partition(":")
    if not separator or not rest:
        raise GatewayConfigError(f"upstream {setting!r} is malformed; accepted: {ACCEPTED_FORMS}")
    if kind == "replay":
        path = Path(rest).expanduser()
        if not path.is_file():
            raise GatewayConfigError(f"upstream replay:{rest}: no transcript file at {path}")
        return Upstream(kind="replay", base=REPLAY_BASE, replay_path=path)
    if kind in ("openai", "anthropic"):
        url = _checked_url(kind, rest)
        return Upstream(kind=kind, base=url.rstrip("/"))
    if kind == "azure":
        return _azure(_checked_url(kind, rest))
    raise GatewayConfigError(
        f"upstream {setting!r}: unknown kind {kind!r}; accepted: {ACCEPTED_FORMS}"
    )
