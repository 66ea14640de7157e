"""A `Directory` read from the bank's identity store over SCIM 2.0 (RFC 7643 schema, RFC 7644
protocol).

`ScimDirectory` lists `GET {base}/Users?filter=active eq true&startIndex=…&count=…`
(`Accept: application/scim+json`, `Authorization: Bearer <token>` read from a file; the token
is never logged nor put in an error) page by page until `totalResults`, and maps every User:

| SCIM (RFC 7643 §4.1)                     | `Person`                                   |
| ---------------------------------------- | ------------------------------------------ |
| `userName`                               | `id` (normalised, must match `PERSON_ID`)  |
| `displayName`, else `name.formatted`     | `name` (else the id)                       |
| the `emails` entry with `primary: true`, else the first | `email`                     |
| `roles[].value`                          | `roles`; unknown roles ignored, a warning  |
| `active: false`                          | the person is absent                       |
| `EXTENSION.identities` (`{github: […]}`) | `identities` by `IdentityKind`             |
| `EXTENSION.sshKeys`                      | `ssh_keys` (OpenSSH public key lines)      |

`EXTENSION` is `urn:codefactory:params:scim:schemas:extension:identities:2.0:User`; the bank
maps its own attributes to it. The same rules as the file apply (`identity.directory`): refused
characters, an unknown identity kind or key, a bad SSH key line, a person listed twice or an
identity claimed by two people raise `DirectoryInvalid` naming the URL and the user.

The whole set is cached for `ttl_s` seconds after it was fetched; then the next question
fetches it again, and a server that is down or answers malformed data raises
`DirectoryInvalid` (fail closed): the last good set is never served beyond its TTL.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from codefactory.identity.directory import (
    IdentityKind,
    Index,
    IndexedDirectory,
    Person,
    Role,
    key_held_twice,
    person_from_entry,
)
from codefactory.identity.errors import DirectoryInvalid, IdentityRefused

log = logging.getLogger(__name__)

EXTENSION = "urn:codefactory:params:scim:schemas:extension:identities:2.0:User"
"""The bank extension schema carrying sender identities and SSH keys (see docs/directory.md)."""
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
MEDIA_TYPES = ("application/scim+json", "application/json")
FILTER = "active eq true"
"""The RFC 7644 §3.4.2.2 filter sent with every listing; `active: false` is still checked."""
MAX_PAGES = 10_000
"""A listing needing more pages than this is refused: a server that never ends its paging."""
EXTENSION_KEYS = {"identities", "sshKeys"}


class ScimDirectory(IndexedDirectory):
    """A `Directory` over a SCIM 2.0 service provider (see the module docstring).

    `base_url` is the SCIM base (`https://idm.bank.example/scim/v2`, no trailing `/Users`);
    `token_file` holds the bearer token (one line), read at every refresh so it can rotate;
    `ttl_s` is how long (seconds) a fetched set answers before it is fetched again;
    `page_size` is the `count` asked per page; `timeout_s` bounds every request.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token_file: Path,
        ttl_s: float = 60.0,
        page_size: int = 100,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s <= 0 or page_size <= 0 or timeout_s <= 0:
            raise ValueError("ttl_s, page_size and timeout_s must be positive")
        self.base_url = base_url.rstrip("/")
        self.token_file = token_file
        self.ttl_s = ttl_s
        self.page_size = page_size
        self.timeout_s = timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._fetched_at: float | None = None
        self._index: Index = ({}, {})

    @property
    def users_url(self) -> str:
        """`{base}/Users`, the RFC 7644 §3.4.2 query endpoint."""
        return f"{self.base_url}/Users"

    def refresh(self) -> None:
        """Fetch the whole set now; `DirectoryInvalid` when the server is down or wrong."""
        with self._lock:
            self._fetched_at = None
            self._index = ({}, {})
            self._index = self._fetch()
            self._fetched_at = self._clock()

    def _load(self) -> Index:
        with self._lock:
            now = self._clock()
            if self._fetched_at is None or now - self._fetched_at >= self.ttl_s:
                self._fetched_at = None  # a failed refresh leaves nobody known
                self._index = ({}, {})
                self._index = self._fetch()
                self._fetched_at = now
            return self._index

    def _fetch(self) -> Index:
        token = self._token()
        resources: list[tuple[int, Any]] = []
        start = 1
        with httpx.Client(timeout=self.timeout_s, follow_redirects=False) as client:
            for _ in range(MAX_PAGES):
                page = self._page(client, token, start)
                try:
                    total, items = _list_response(page)
                except ValueError as err:
                    raise self._invalid(f"page at startIndex {start}: {err}") from err
                resources.extend((start + offset, item) for offset, item in enumerate(items))
                if start - 1 + len(items) >= total:
                    return self._index_of(resources)
                if not items:
                    raise self._invalid(
                        f"page at startIndex {start} is empty but totalResults is {total}"
                    )
                start += len(items)
        raise self._invalid(f"more than {MAX_PAGES} pages")

    def _token(self) -> str:
        try:
            token = self.token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as err:
            raise DirectoryInvalid(
                f"SCIM directory {self.users_url}: token file {self.token_file}: {err}"
            ) from err
        if not token or any(char.isspace() for char in token):
            raise DirectoryInvalid(
                f"SCIM directory {self.users_url}: token file {self.token_file} must hold "
                "one bearer token on one line"
            )
        return token

    def _page(self, client: httpx.Client, token: str, start: int) -> Any:
        params = {"filter": FILTER, "startIndex": str(start), "count": str(self.page_size)}
        headers = {"Accept": MEDIA_TYPES[0], "Authorization": f"Bearer {token}"}
        try:
            response = client.get(self.users_url, params=params, headers=headers)
        except httpx.HTTPError as err:
            raise self._invalid(f"cannot reach the server: {type(err).__name__}: {err}") from err
        if response.status_code != 200:
            raise self._invalid(_status_text(response))
        media = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in MEDIA_TYPES:
            raise self._invalid(f"answered {media or 'no content type'!r}, not {MEDIA_TYPES[0]}")
        try:
            return response.json()
        except ValueError as err:
            raise self._invalid(f"answered malformed JSON: {err}") from err

    def _index_of(self, resources: list[tuple[int, Any]]) -> Index:
        people: dict[str, Person] = {}
        index: dict[tuple[IdentityKind, str], Person] = {}
        for position, resource in resources:
            try:
                raw_id, entry, active = _entry(resource)
            except (IdentityRefused, ValueError, TypeError) as err:
                raise self._invalid(f"resource {position}: {err}") from err
            if not active:
                continue
            try:
                person = person_from_entry(raw_id, entry)
            except (IdentityRefused, ValueError, TypeError) as err:
                raise self._invalid(f"user {raw_id!r}: {err}") from err
            if person.id in people:
                raise self._invalid(f"person {person.id!r} is listed twice")
            people[person.id] = person
            for kind, values in person.identities.items():
                for value in values:
                    other = index.setdefault((kind, value), person)
                    if other is not person:
                        raise self._invalid(
                            f"the {kind.value} identity {value!r} belongs to both "
                            f"{other.id!r} and {person.id!r}"
                        )
        shared = key_held_twice(people.values())
        if shared:
            raise self._invalid(shared)
        return people, index

    def _invalid(self, what: str) -> DirectoryInvalid:
        return DirectoryInvalid(f"SCIM directory {self.users_url}: {what}")


def _list_response(page: Any) -> tuple[int, list[Any]]:
    """`(totalResults, Resources)` of an RFC 7644 §3.4.2 ListResponse; `ValueError` when the
    answer is not one."""
    if not isinstance(page, dict) or LIST_RESPONSE not in _schemas(page):
        raise ValueError(f"the answer is not a SCIM ListResponse ({LIST_RESPONSE})")
    total = page.get("totalResults")
    items = page.get("Resources", [])
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise ValueError("ListResponse `totalResults` is not a non-negative integer")
    if not isinstance(items, list):
        raise ValueError("ListResponse `Resources` is not a list")
    return total, items


def _schemas(resource: Mapping[str, Any]) -> list[str]:
    schemas = resource.get("schemas", [])
    return [item for item in schemas if isinstance(item, str)] if isinstance(schemas, list) else []


def _entry(resource: Any) -> tuple[str, dict[str, Any], bool]:
    """`(userName, the file entry FileDirectory checks, active)` of one SCIM User."""
    if not isinstance(resource, dict) or USER_SCHEMA not in _schemas(resource):
        raise TypeError(f"not a SCIM User ({USER_SCHEMA})")
    user_name = resource.get("userName")
    if not isinstance(user_name, str):
        raise TypeError("`userName` is missing or not a string")
    active = resource.get("active", True)
    if not isinstance(active, bool):
        raise TypeError(f"user {user_name!r}: `active` is not a boolean")
    entry: dict[str, Any] = {"name": _name(resource) or user_name}
    email = _email(resource.get("emails", []))
    if email:
        entry["email"] = email
    entry["roles"] = _roles(user_name, resource.get("roles", []))
    extension = resource.get(EXTENSION, {})
    if not isinstance(extension, dict):
        raise TypeError(f"user {user_name!r}: {EXTENSION} is not an object")
    unknown = set(extension) - EXTENSION_KEYS
    if unknown:
        raise ValueError(f"user {user_name!r}: unknown {EXTENSION} keys {sorted(unknown)}")
    entry["identities"] = extension.get("identities", {})
    entry["ssh_keys"] = extension.get("sshKeys", [])
    return user_name, entry, active


def _name(resource: Mapping[str, Any]) -> str:
    display = resource.get("displayName")
    if isinstance(display, str) and display.strip():
        return display
    name = resource.get("name")
    formatted = name.get("formatted") if isinstance(name, dict) else None
    return formatted if isinstance(formatted, str) and formatted.strip() else ""


def _email(emails: Any) -> str:
    if not isinstance(emails, list):
        raise TypeError("`emails` is not a list")
    values = [
        item for item in emails if isinstance(item, dict) and isinstance(item.get("value"), str)
    ]
    primary = [item for item in values if item.get("primary") is True]
    chosen = primary or values
    return str(chosen[0]["value"]) if chosen else ""


def _roles(user_name: str, roles: Any) -> list[str]:
    if not isinstance(roles, list):
        raise TypeError("`roles` is not a list")
    known = {role.value for role in Role}
    kept: list[str] = []
    for item in roles:
        value = item.get("value") if isinstance(item, dict) else None
        if not isinstance(value, str):
            raise TypeError("a `roles` entry has no string `value`")
        if value in known:
            kept.append(value)
        else:
            log.warning(
                "SCIM user %r: role %r is not a factory role; ignored",
                user_name,
                value.encode("unicode_escape").decode("ascii")[:80],
            )
    return kept


def _status_text(response: httpx.Response) -> str:
    """What a non-200 answer says: the status, and an RFC 7644 §3.12 error's `detail`."""
    hint = {401: "the bearer token was refused", 403: "the bearer token may not list Users"}
    text = f"answered HTTP {response.status_code}"
    if response.status_code in hint:
        text += f" ({hint[response.status_code]})"
    try:
        body = response.json()
    except ValueError:
        return text
    if isinstance(body, dict) and ERROR_SCHEMA in _schemas(body):
        detail = body.get("detail")
        if isinstance(detail, str):
            shown = detail.encode("unicode_escape").decode("ascii")[:200]
            text += f": {shown}"
    return text
