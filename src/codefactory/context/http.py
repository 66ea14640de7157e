"""The one HTTP client every vendor connector uses: base URL and credential from settings,
a deadline, a byte cap read while streaming, and each failure mapped to a named
`ContextError` (401/403 `SourceUnauthorized`, 404 `NotFound`, 429 `SourceRateLimited` with
`Retry-After` in seconds, 5xx/timeouts/refused connections `SourceUnavailable`, a body that
is not JSON `MalformedResponse`, a body over the cap `ResponseTooLarge`).

Redirects are not followed (a source that redirects elsewhere is not the configured one),
the process's proxy variables are not read (`trust_env=False`), and the credential is sent
only to `base_url`: a path is joined to it, never replaced by an absolute URL.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from codefactory import i_json
from codefactory.context.errors import (
    MalformedResponse,
    NotFound,
    ResponseTooLarge,
    SourceRateLimited,
    SourceUnauthorized,
    SourceUnavailable,
)

DEFAULT_MAX_BYTES = 5_000_000
"""The largest answer a connector reads (bytes); a 50 MB page is refused, not parsed."""


def path_segment(value: str) -> str:
    """`value` quoted as one URL path segment (`/` and `..` cannot escape it)."""
    return quote(value, safe="")


@dataclass(kw_only=True)
class VendorClient:
    """JSON over HTTPS to one vendor base URL, as `connector` (named in every error)."""

    connector: str
    base_url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    """Sent with every request: the credential (`Authorization`, `DD-API-KEY`, ...)."""
    timeout_s: float = 15.0
    max_bytes: int = DEFAULT_MAX_BYTES
    verify: bool | str = True
    """TLS verification: True (system CAs), or a CA bundle path for a private CA."""
    transport: httpx.BaseTransport | None = None
    """Tests may pass one; production leaves it None (real sockets)."""
    _client: httpx.Client | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def _http(self) -> httpx.Client:
        """One connection pool per client, made at the first request (loading the CA
        bundle for every request cost about 0.14 s)."""
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    timeout=self.timeout_s,
                    follow_redirects=False,
                    trust_env=False,
                    verify=self.verify,
                    transport=self.transport,
                )
            return self._client

    def close(self) -> None:
        """Close the connection pool (a later request opens a new one)."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET `base_url` + `path` with query `params`; the decoded JSON document."""
        return self.request_json("GET", path, params=params)

    def post_json(self, path: str, body: Any, params: Mapping[str, Any] | None = None) -> Any:
        """POST `body` as JSON to `base_url` + `path`; the decoded JSON document."""
        return self.request_json("POST", path, params=params, body=body)

    def post_bytes(
        self,
        path: str,
        content: bytes,
        content_type: str,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """POST raw `content` (an attachment) to `base_url` + `path`; the decoded JSON."""
        return self.request_json(
            "POST", path, params=params, content=content, content_type=content_type
        )

    def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        content: bytes | None = None,
        content_type: str = "",
    ) -> Any:
        """One request; the decoded JSON answer (None for an empty body: `204`) or a named
        `ContextError`."""
        if "://" in path or not path.startswith("/"):
            raise ValueError(f"{self.connector}: a request path must start with '/': {path!r}")
        url = self.base_url.rstrip("/") + path
        raw = self._read(method, url, params, body, content, content_type)
        if not raw:  # 204 No Content (a Jira transition)
            return None
        try:
            return i_json.loads(raw)  # RFC 7493: nothing the audit log could not record
        except (ValueError, UnicodeDecodeError) as err:
            raise MalformedResponse(
                self.connector, f"{method} {path} answered with something that is not JSON: {err}"
            ) from None

    def _read(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        body: Any,
        content: bytes | None = None,
        content_type: str = "",
    ) -> bytes:
        headers = {"Accept": "application/json", **self.headers}
        if content is not None:
            headers["Content-Type"] = content_type
        try:
            with self._http().stream(
                method,
                url,
                params=dict(params or {}),
                json=body if content is None else None,
                content=content,
                headers=headers,
            ) as response:
                self._raise_for_status(response)
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise ResponseTooLarge(
                            self.connector,
                            f"the answer to {method} {response.url.path} is over "
                            f"{self.max_bytes} bytes; nothing of it was used",
                        )
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.TimeoutException:
            raise SourceUnavailable(
                self.connector, f"no answer within {self.timeout_s:g} s"
            ) from None
        except httpx.HTTPError as err:
            raise SourceUnavailable(
                self.connector, f"could not reach {self.base_url}: {type(err).__name__}"
            ) from None

    def _raise_for_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if status < 300:
            return
        where = f"{response.request.method} {response.url.path}"
        if status in (401, 403):
            raise SourceUnauthorized(
                self.connector, f"{where} answered {status}: the credential was refused"
            )
        if status == 404:
            raise NotFound(self.connector, f"{where} answered 404: no such item")
        if status == 429:
            retry_after = _retry_after_s(response.headers.get("retry-after", ""))
            hint = f"; retry after {retry_after:g} s" if retry_after is not None else ""
            raise SourceRateLimited(
                self.connector, f"{where} answered 429 (rate limited){hint}", retry_after
            )
        if status >= 500:
            raise SourceUnavailable(self.connector, f"{where} answered {status}")
        if 300 <= status < 400:
            raise SourceUnavailable(
                self.connector,
                f"{where} answered a redirect ({status}); redirects are not followed",
            )
        raise MalformedResponse(self.connector, f"{where} answered {status}")


def _retry_after_s(value: str) -> float | None:
    """`Retry-After` in seconds (RFC 9110 §10.2.3: delay-seconds; an HTTP date is not
    interpreted and counts as unknown)."""
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
