"""The one HTTP client every forge adapter uses: JSON over HTTPS to the REST base URL, each
failure a named `ForgeApiError`, and retries only where the vendor says they are safe.

Retried: `429`, and a `403` that the vendor marks as a rate limit (GitHub's
`x-ratelimit-remaining: 0` or a `Retry-After`), and `502/503/504` of a request that is safe to
repeat (GET, PUT, DELETE; a POST only when the caller says it is idempotent), each after the
`Retry-After` the forge sent (seconds or an HTTP date) or a short backoff, at most
`max_retries` times and never longer than `max_retry_wait_s` per wait. Redirects are not
followed, the process's proxy variables are not read, and the credential goes only to the
configured base URL.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from codefactory import i_json
from codefactory.review.forges.errors import (
    ForgeApiError,
    ForgeConflict,
    ForgeForbidden,
    ForgeInvalid,
    ForgeNotFound,
    ForgeRateLimited,
    ForgeUnauthorized,
    ForgeUnavailable,
)
from codefactory.review.forges.settings import ForgeSettings

MAX_BYTES = 10_000_000
_RETRIED_5XX = frozenset({502, 503, 504})
_SAFE_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})


@dataclass(kw_only=True)
class ForgeHttp:
    """Requests to one forge's REST base URL as `forge` (named in every error)."""

    forge: str
    base_url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    """Sent with every request (`Accept`, API version); credentials go per call."""
    timeout_s: float = 20.0
    max_retries: int = 3
    max_retry_wait_s: float = 30.0
    verify: bool | str | ssl.SSLContext = True
    """TLS verification: True (the system's CAs), a CA bundle's path, or a context."""
    transport: httpx.BaseTransport | None = None
    sleep: Callable[[float], None] = time.sleep
    _client: httpx.Client | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def of(
        cls,
        settings: ForgeSettings,
        *,
        base_url: str,
        headers: Mapping[str, str],
        transport: httpx.BaseTransport | None = None,
    ) -> ForgeHttp:
        """The client of `settings.type`'s REST API at `base_url`, with the forge's deadline,
        retry limits and CA bundle (`forge.*`)."""
        return cls(
            forge=settings.type,
            base_url=base_url,
            headers=headers,
            timeout_s=settings.timeout_s,
            max_retries=settings.max_retries,
            max_retry_wait_s=settings.max_retry_wait_s,
            verify=str(settings.ca_file) if settings.ca_file else True,
            transport=transport,
        )

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    base_url=self.base_url.rstrip("/") + "/",
                    headers=dict(self.headers),
                    timeout=self.timeout_s,
                    verify=(
                        ssl.create_default_context(cafile=self.verify)
                        if isinstance(self.verify, str)
                        else self.verify
                    ),  # httpx 0.28 deprecates a path: a context instead
                    follow_redirects=False,
                    trust_env=False,
                    transport=self.transport,
                )
            return self._client

    def request(
        self,
        method: str,
        path: str,
        *,
        call: str,
        auth: str,
        json_body: Any = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = False,
    ) -> Any:
        """`method path` (relative to the base URL; never an absolute URL) with
        `Authorization: auth`; returns the decoded JSON body (None when empty).
        `call` names the operation in errors. Raises a `ForgeApiError` subclass."""
        body, _ = self.request_answer(
            method, path, call=call, auth=auth, json_body=json_body, content=content,
            params=params, headers=headers, idempotent=idempotent,
        )  # fmt: skip
        return body

    def request_answer(
        self,
        method: str,
        path: str,
        *,
        call: str,
        auth: str,
        json_body: Any = None,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool = False,
    ) -> tuple[Any, httpx.Headers]:
        """As `request`, with the answer's headers (Bitbucket Data Center names the
        authenticated user in `X-AUSERNAME`)."""
        if "://" in path or path.startswith("//"):
            raise ValueError(f"{path!r}: forge paths are relative to the base URL")
        sent = {"Authorization": auth, **(headers or {})}
        retry = method in _SAFE_METHODS or idempotent
        attempt = 0
        while True:
            try:
                response = self._http().request(
                    method,
                    path.lstrip("/"),
                    json=json_body,
                    content=content,
                    params=params,
                    headers=sent,
                )
            except httpx.TimeoutException as err:
                failure: ForgeApiError = ForgeUnavailable(self.forge, call, 0, f"timed out: {err}")
                wait = None
            except httpx.HTTPError as err:
                failure = ForgeUnavailable(self.forge, call, 0, f"unreachable: {err}")
                wait = None
            else:
                if response.status_code < 300:
                    return _decoded(response, self.forge, call), response.headers
                failure, wait = _failure(response, self.forge, call)
                if (
                    isinstance(failure, ForgeUnavailable)
                    and response.status_code not in _RETRIED_5XX
                ):
                    raise failure
            limited = isinstance(failure, ForgeRateLimited)
            transient = retry and isinstance(failure, ForgeUnavailable)  # never a 4xx
            if attempt >= self.max_retries or not (limited or transient):
                raise failure
            delay = wait if wait is not None else min(2.0**attempt, self.max_retry_wait_s)
            if delay > self.max_retry_wait_s:
                raise failure
            attempt += 1
            self.sleep(delay)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def _decoded(response: httpx.Response, forge: str, call: str) -> Any:
    body = response.content
    if len(body) > MAX_BYTES:
        raise ForgeUnavailable(forge, call, response.status_code, "answer over the size cap")
    if not body.strip():
        return None
    try:
        return i_json.loads(body)  # RFC 7493: nothing the audit log could not record
    except ValueError as err:
        raise ForgeUnavailable(forge, call, response.status_code, f"not I-JSON: {err}") from err


def _message(response: httpx.Response) -> str:
    """The vendor's own words: GitHub/GitLab `message`, Azure DevOps `message`, Bitbucket
    `error.message`, else the start of the body."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        errors = data.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0].get("message") or json.dumps(errors[0])
            return f"{data.get('message', '')} {first}".strip()
        for key in ("message", "error", "error_description"):
            if data.get(key):
                return str(data[key])
    return json.dumps(data)[:300]


def retry_after_s(response: httpx.Response) -> float | None:
    """`Retry-After` in seconds (delta or HTTP date, RFC 9110 §10.2.3), else GitHub's
    `x-ratelimit-reset` epoch; None when the forge said nothing readable. A delta is ASCII
    digits only (RFC 9110's `1*DIGIT`: `"²".isdigit()` holds but `float("²")` raises); a
    value that is neither is treated as absent."""
    value = response.headers.get("retry-after", "").strip()
    if value:
        if _ascii_digits(value):
            return float(value)
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        try:
            return max(0.0, when.timestamp() - time.time())
        except (OverflowError, ValueError, OSError):
            return None
    reset = response.headers.get("x-ratelimit-reset", "").strip()
    if _ascii_digits(reset):
        return max(0.0, float(reset) - time.time())
    return None


def _ascii_digits(value: str) -> bool:
    """`1*DIGIT` of RFC 9110: ASCII 0-9 only (str.isdigit also holds for `²`, `٣`)."""
    return value.isascii() and value.isdigit()


def _failure(response: httpx.Response, forge: str, call: str) -> tuple[ForgeApiError, float | None]:
    status = response.status_code
    message = _message(response)
    wait = retry_after_s(response)
    limited = status == 429 or (
        status == 403
        and (
            response.headers.get("x-ratelimit-remaining") == "0"
            or "retry-after" in response.headers
        )
    )
    if limited:
        return ForgeRateLimited(forge, call, status, message, wait), wait
    kinds: dict[int, type[ForgeApiError]] = {
        400: ForgeInvalid,
        401: ForgeUnauthorized,
        403: ForgeForbidden,
        404: ForgeNotFound,
        409: ForgeConflict,
        422: ForgeInvalid,
    }
    if status >= 500:
        return ForgeUnavailable(forge, call, status, message), wait
    return kinds.get(status, ForgeInvalid)(forge, call, status, message), None
