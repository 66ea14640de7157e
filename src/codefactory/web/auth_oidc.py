"""The bank's OpenID Connect provider as the factory sees it: its discovery document, its
keys, and the check of a token it signed.

A token (an ID token, or a JWT access token, RFC 9068) is accepted only when its signature
verifies against a key of the provider's JWK set (found through discovery), with an
algorithm from the allow-list and matching that key, and its `iss`, `aud` (the factory's
client ids), `exp`, `iat` and `sub` are right (OpenID Connect Core §3.1.3.7, RFC 8725).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import httpx
import jwt

METADATA_TTL_S = 3600.0
KEYS_TTL_S = 3600.0
KEYS_REFETCH_S = 30.0
"""An unknown `kid` refetches the JWK set at most this often (key rotation, not a flood)."""
LEEWAY_S = 30
TOKEN_TYPES = {"jwt", "at+jwt", "application/at+jwt"}
MAX_TOKEN_BYTES = 16384


class TokenRefused(Exception):
    """A token that does not prove who its bearer is; `reason` is a short stable word
    (`expired`, `audience`, `issuer`, `signature`, `algorithm`, `unknown-key`, `malformed`,
    `nonce`, …) for the audit log, the message says what was wrong."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ProviderUnavailable(Exception):
    """The provider's discovery document or keys cannot be fetched or are not usable: no
    token can be checked, so none is accepted."""


class OidcProvider:
    """One issuer: discovery (cached), its JWK set (cached, refetched for a new `kid`), and
    `verify(token) -> claims`."""

    def __init__(
        self,
        issuer: str,
        *,
        audiences: Sequence[str],
        algorithms: Sequence[str],
        timeout_s: float = 10.0,
    ) -> None:
        self.issuer = issuer
        self.audiences = tuple(audiences)
        self.algorithms = tuple(algorithms)
        self.timeout_s = timeout_s
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: dict[str, Any] = {}
        self._keys_at = 0.0
        self._lock = asyncio.Lock()

    async def metadata(self) -> dict[str, Any]:
        """The discovery document (OpenID Connect Discovery §4), whose `issuer` must be
        exactly the configured one (§4.3); `ProviderUnavailable` otherwise."""
        async with self._lock:
            if self._metadata is None or time.monotonic() - self._metadata_at > METADATA_TTL_S:
                url = f"{self.issuer}/.well-known/openid-configuration"
                document = await self._get_json(url)
                if document.get("issuer") != self.issuer:
                    raise ProviderUnavailable(
                        f"the provider at {url} names issuer {document.get('issuer')!r}, "
                        f"not {self.issuer!r} (OpenID Connect Discovery §4.3)"
                    )
                for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                    if not isinstance(document.get(field), str):
                        raise ProviderUnavailable(f"the provider's discovery lacks {field}")
                self._metadata, self._metadata_at = document, time.monotonic()
            return self._metadata

    async def verify(self, token: str) -> dict[str, Any]:
        """The claims of `token` once every check passed; `TokenRefused` says which failed,
        `ProviderUnavailable` when the keys cannot be had."""
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenRefused("malformed", "the token is longer than any the provider signs")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as err:
            raise TokenRefused("malformed", f"the token is not a signed JWT: {err}") from None
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise TokenRefused("algorithm", f"the token's algorithm {alg!r} is not allowed")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in TOKEN_TYPES):
            raise TokenRefused("type", f"the token's type {typ!r} is not a JWT")
        key = await self._key(header.get("kid"), alg)
        claims = self._decode(token, key, alg)
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise TokenRefused("missing-claim", "the token names no subject")
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") not in self.audiences:
            # OpenID Connect Core §3.1.3.7 (4, 5): several audiences need our azp
            raise TokenRefused("audience", "the token has several audiences and no azp of ours")
        return claims

    def _decode(self, token: str, key: Any, alg: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=list(self.audiences),
                issuer=self.issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRefused("expired", "the token has expired") from None
        except jwt.InvalidAudienceError:
            raise TokenRefused("audience", "the token was issued to another client") from None
        except jwt.InvalidIssuerError:
            raise TokenRefused("issuer", "the token was issued by another provider") from None
        except jwt.InvalidSignatureError:
            raise TokenRefused("signature", "the token's signature does not verify") from None
        except jwt.ImmatureSignatureError:
            raise TokenRefused("not-yet-valid", "the token is not valid yet") from None
        except jwt.MissingRequiredClaimError as err:
            raise TokenRefused("missing-claim", f"the token lacks {err.claim!r}") from None
        except jwt.PyJWTError as err:
            raise TokenRefused("malformed", f"the token is invalid: {err}") from None
        return claims

    async def _key(self, kid: Any, alg: str) -> Any:
        keys = await self._key_set(force=False)
        key = _pick(keys, kid)
        if key is None and time.monotonic() - self._keys_at > KEYS_REFETCH_S:
            key = _pick(await self._key_set(force=True), kid)
        if key is None:
            raise TokenRefused("unknown-key", f"no key {kid!r} in the provider's key set")
        declared = key.get("alg")
        if declared is not None and declared != alg:
            raise TokenRefused("algorithm", f"key {kid!r} is for {declared}, not {alg}")
        try:
            return jwt.PyJWK.from_dict(key, algorithm=alg).key
        except jwt.PyJWTError as err:
            raise TokenRefused("algorithm", f"key {kid!r} cannot check {alg}: {err}") from None

    async def _key_set(self, *, force: bool) -> dict[str, Any]:
        stale = time.monotonic() - self._keys_at > KEYS_TTL_S
        if force or stale or not self._keys:
            uri = (await self.metadata())["jwks_uri"]
            document = await self._get_json(uri)
            if not isinstance(document.get("keys"), list):
                raise ProviderUnavailable(f"the provider's JWK set at {uri} has no keys")
            self._keys, self._keys_at = document, time.monotonic()
        return self._keys

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                response = await client.get(url, headers={"Accept": "application/json"})
                response.raise_for_status()
                document = response.json()
        except (httpx.HTTPError, ValueError) as err:
            raise ProviderUnavailable(f"cannot read {url}: {err}") from err
        if not isinstance(document, dict):
            raise ProviderUnavailable(f"{url} is not a JSON object")
        return document


def _pick(key_set: dict[str, Any], kid: Any) -> dict[str, Any] | None:
    keys = [key for key in key_set.get("keys", []) if isinstance(key, dict)]
    keys = [key for key in keys if key.get("use", "sig") == "sig"]
    if kid is None:
        return keys[0] if len(keys) == 1 else None
    return next((key for key in keys if key.get("kid") == kid), None)
