"""Each person's grant to the factory on the forge: the user token a draft request is opened
under (OAuth 2.0 authorization code with PKCE, RFC 6749 §4.1 and RFC 7636; refresh, §6).

A person grants once at `/forge/connect` (web/forge_grants.py); the token is kept as
`<forge.user_tokens_dir>/<person>.json` (0600; the folder 0700): `access_token`,
`refresh_token`, `expires_at` (Unix seconds, 0 when the forge gave no expiry), `scope`,
`token_type`. `UserTokens.token_for` refreshes an expired token before use and keeps the new
one; development mode's `forge.user_tokens` (person → token) comes first, for tests and demos.
No token is ever logged or audited.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from authlib.common.errors import AuthlibBaseError  # type: ignore[import-untyped]
from authlib.integrations.httpx_client import OAuth2Client  # type: ignore[import-untyped]

from codefactory.review.forges.errors import ForgeApiError, NoUserToken
from codefactory.review.forges.settings import ForgeSettings
from codefactory.secret_files import read_secret

EXPIRY_MARGIN_S = 60.0
"""A token this close to its expiry is refreshed before use."""

_PERSON_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,127}")

_DEFAULT_SCOPES = {
    "github": "repo",
    "gitlab": "api",
    "bitbucket": "pullrequest:write repository:write",
    "azure-devops": "499b84ac-1321-427f-aa17-267ca6975798/.default offline_access",
}


class GrantRefused(ForgeApiError):
    """The forge's authorization server refused a code or a refresh (its `error` kept)."""

    def __init__(self, forge: str, call: str, error: str) -> None:
        super().__init__(forge, call, 400, error)


@dataclass(frozen=True)
class Grant:
    """One person's user token on the forge."""

    person: str
    access_token: str
    refresh_token: str = ""
    expires_at: float = 0.0
    """Unix seconds; 0: the forge gave no expiry."""
    scope: str = ""
    token_type: str = "bearer"

    def expired(self, now: float) -> bool:
        return bool(self.expires_at) and now >= self.expires_at - EXPIRY_MARGIN_S

    def described(self) -> dict[str, Any]:
        """What an audit event may say of the grant: never a token."""
        return {"person": self.person, "scope": self.scope, "expires_at": self.expires_at}


def endpoints(settings: ForgeSettings) -> tuple[str, str]:
    """The authorization and token endpoints: `forge.oauth.*` when set, else the forge's
    documented ones derived from `forge.base_url`. `ValueError` when neither is known
    (Azure DevOps: Entra ID's tenant endpoints must be set)."""
    oauth = settings.oauth
    if oauth.authorize_url and oauth.token_url:
        return oauth.authorize_url, oauth.token_url
    base = settings.base_url or {"github": "https://github.com"}.get(settings.type, "")
    if settings.type == "bitbucket" and settings.bitbucket_flavour == "cloud":
        base = settings.base_url or "https://bitbucket.org"
        derived = (f"{base}/site/oauth2/authorize", f"{base}/site/oauth2/access_token")
    elif settings.type == "bitbucket":
        derived = (f"{base}/rest/oauth2/latest/authorize", f"{base}/rest/oauth2/latest/token")
    elif settings.type == "github":
        derived = (f"{base}/login/oauth/authorize", f"{base}/login/oauth/access_token")
    elif settings.type == "gitlab":
        derived = (f"{base}/oauth/authorize", f"{base}/oauth/token")
    else:
        raise ValueError(
            f"forge.oauth.authorize_url and token_url must be set for {settings.type} "
            "(Azure DevOps: the Entra ID tenant's /oauth2/v2.0/authorize and /token)"
        )
    if not base:
        raise ValueError(f"forge.base_url is required to derive {settings.type}'s OAuth endpoints")
    return oauth.authorize_url or derived[0], oauth.token_url or derived[1]


def scopes(settings: ForgeSettings) -> str:
    return settings.oauth.scopes or _DEFAULT_SCOPES.get(settings.type, "")


def oauth_client(
    settings: ForgeSettings, *, redirect_uri: str = "", transport: httpx.BaseTransport | None = None
) -> OAuth2Client:
    """authlib's client for the factory's OAuth application (PKCE S256, JSON answers)."""
    secret_file = settings.oauth.client_secret_file
    secret = read_secret(secret_file, "forge OAuth client secret") if secret_file else None
    verify: bool | str = str(settings.ca_file) if settings.ca_file else True
    return OAuth2Client(
        client_id=settings.oauth.client_id,
        client_secret=secret,
        token_endpoint_auth_method="client_secret_post" if secret else "none",
        scope=scopes(settings),
        redirect_uri=redirect_uri or None,
        code_challenge_method="S256",
        timeout=settings.timeout_s,
        verify=verify,
        trust_env=False,
        follow_redirects=False,
        headers={"Accept": "application/json"},
        transport=transport,
    )


def grant_of(person: str, token: dict[str, Any], *, now: float | None = None) -> Grant:
    """A `Grant` from a token endpoint's JSON answer (RFC 6749 §5.1)."""
    access = token.get("access_token")
    if not isinstance(access, str) or not access:
        raise ValueError("the token endpoint's answer has no access_token")
    expires_in = token.get("expires_in")
    expires_at = token.get("expires_at")
    if isinstance(expires_in, (int, float)) and expires_in > 0:
        expires_at = (now if now is not None else time.time()) + float(expires_in)
    return Grant(
        person=person,
        access_token=access,
        refresh_token=str(token.get("refresh_token") or ""),
        expires_at=float(expires_at) if isinstance(expires_at, (int, float)) else 0.0,
        scope=str(token.get("scope") or ""),
        token_type=str(token.get("token_type") or "bearer"),
    )


class GrantStore:
    """`<folder>/<person>.json`, 0600 in a 0700 folder, written whole or not at all."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, person: str) -> Path:
        if not _PERSON_ID.fullmatch(person):
            raise ValueError(f"{person!r} is not a directory person id")
        return self.folder / f"{person}.json"

    def load(self, person: str) -> Grant | None:
        try:
            data = json.loads(self.path(person).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise ValueError(f"the forge grant of {person} cannot be read: {err}") from None
        if not isinstance(data, dict) or not isinstance(data.get("access_token"), str):
            raise ValueError(f"the forge grant of {person} holds no access_token")
        try:
            return grant_of(person, {**data, "expires_in": None})
        except (TypeError, ValueError) as err:
            raise ValueError(f"the forge grant of {person} cannot be read: {err}") from None

    def save(self, grant: Grant) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        target = self.path(grant.person)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".grant-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({k: v for k, v in asdict(grant).items() if k != "person"}, handle)
            os.replace(tmp, target)  # mkstemp made it 0600
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def delete(self, person: str) -> bool:
        try:
            self.path(person).unlink()
        except FileNotFoundError:
            return False
        return True


class UserTokens:
    """The token a person's requests are opened under: development tokens first, then the
    person's stored grant, refreshed when it has expired. `NoUserToken` when there is none
    (or it expired with no refresh token); `GrantRefused` when the forge refuses the refresh."""

    def __init__(
        self, settings: ForgeSettings, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.settings = settings
        self.transport = transport
        self._lock = threading.Lock()

    @property
    def store(self) -> GrantStore | None:
        folder = self.settings.user_tokens_dir
        return GrantStore(folder) if folder is not None else None

    def token_for(self, person: str, *, now: float | None = None) -> str:
        development = self.settings.user_tokens.get(person)
        if development:
            return development
        store = self.store
        if store is None:
            raise NoUserToken(self.settings.type, person)
        with self._lock:  # one refresh at a time: a refresh token is often single-use
            try:
                grant = store.load(person)
            except ValueError:  # not a person id, or an unreadable file: no usable grant
                raise NoUserToken(self.settings.type, person) from None
            if grant is None:
                raise NoUserToken(self.settings.type, person)
            moment = now if now is not None else time.time()
            if not grant.expired(moment):
                return grant.access_token
            if not grant.refresh_token:
                raise NoUserToken(self.settings.type, person)
            fresh = self.refresh(grant, now=moment)
            store.save(fresh)
            return fresh.access_token

    def refresh(self, grant: Grant, *, now: float) -> Grant:
        """RFC 6749 §6: a new access token for `grant`'s refresh token (kept when the forge
        does not rotate it)."""
        _, token_url = endpoints(self.settings)
        with oauth_client(self.settings, transport=self.transport) as client:
            try:
                token = client.refresh_token(token_url, refresh_token=grant.refresh_token)
            except AuthlibBaseError as err:
                raise GrantRefused(self.settings.type, "refresh token", str(err.error)) from None
            except httpx.HTTPError as err:
                raise GrantRefused(self.settings.type, "refresh token", str(err)) from None
        fresh = grant_of(grant.person, dict(token), now=now)
        if not fresh.refresh_token:
            fresh = Grant(**{**asdict(fresh), "refresh_token": grant.refresh_token})
        return fresh
