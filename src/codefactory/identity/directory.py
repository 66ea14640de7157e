"""The directory of people: who a sender identity is, what roles they hold, which keys are theirs.

Every identity a sender carries (a GitHub login, a GitLab username, a Jira account id, a
ServiceNow user, a Slack user id, an OIDC subject, a local account) maps to at most one
canonical `Person`; names are compared after `identity.names.normalized` (NFKC, case-folded),
and identity text with control, format or zero-width characters is refused.

The `Directory` port has a file-backed default (`FileDirectory`, a TOML file the bank keeps
outside the factory's data folder, so a copy of the data folder alone cannot add a reviewer
or a key); SCIM or LDAP adapters answer the same three questions.
"""

from __future__ import annotations

import enum
import os
import re
import threading
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from codefactory.identity.errors import DirectoryInvalid, IdentityRefused, UnknownPerson
from codefactory.identity.names import check_identity, normalized

PERSON_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
"""A person's canonical id: lower case, as it appears after `user:` in actors and trailers."""


class IdentityKind(enum.StrEnum):
    """The systems whose user identities the directory maps to people."""

    GITHUB = "github"
    """A GitHub login (`sender.login`)."""
    GITLAB = "gitlab"
    """A GitLab username (`user.username`)."""
    AZURE_DEVOPS = "azure-devops"
    """An Azure DevOps identity's `uniqueName` (the sign-in name: an e-mail address or UPN on
    Services, `DOMAIN\\user` on Server)."""
    BITBUCKET = "bitbucket"
    """A Bitbucket Cloud Atlassian `account_id`, or a Bitbucket Data Center user `name`."""
    JIRA = "jira"
    """A Jira account id (`accountId`, Cloud) or user name (`name`, Data Center)."""
    SERVICENOW = "servicenow"
    """A ServiceNow user (`sys_user.user_name` or its sys_id)."""
    SLACK = "slack"
    """A Slack user id (`U…`)."""
    OIDC = "oidc"
    """An OpenID Connect subject, written `<issuer>#<sub>` so two identity providers never
    collide."""
    UNIX = "unix"
    """An account on the factory host, for the local CLI."""
    WEBHOOK = "webhook"
    """A generic webhook's key name: who may act for whom is policy's decision."""


class Role(enum.StrEnum):
    """What a person may do; a governance action needs its role, and never an agent."""

    SPONSOR = "sponsor"
    """May sponsor runs: an agent acts on their behalf."""
    REVIEWER = "reviewer"
    """May approve or reject a change (never one they sponsored or caused)."""
    SECURITY = "security"
    """May suspend, reactivate or revoke agents, rotate keys and waive findings."""
    POLICY_ADMIN = "policy-admin"
    """May propose and approve policy changes (a second person must approve)."""
    REGISTRY_ADMIN = "registry-admin"
    """May propose and approve engine registry changes (a second person must approve)."""
    QA = "qa"
    """May sign off QA."""
    UAT = "uat"
    """May sign off user acceptance."""
    OPERATOR = "operator"
    """May halt and resume the factory."""


@dataclass(frozen=True, kw_only=True)
class Person:
    """One human, as the directory knows them."""

    id: str
    """Canonical id (`PERSON_ID`)."""
    name: str
    email: str = ""
    roles: frozenset[Role] = frozenset()
    identities: Mapping[IdentityKind, tuple[str, ...]] = field(default_factory=dict)
    """Sender identities by kind, in normalised form."""
    ssh_keys: tuple[str, ...] = ()
    """OpenSSH public key lines (`ssh-ed25519 AAAA… comment`) whose signatures are theirs."""

    @property
    def actor(self) -> str:
        """How the audit log, trailers and packages name this person: `user:<id>`."""
        return f"user:{self.id}"

    def has_role(self, role: Role) -> bool:
        return role in self.roles


class Directory(Protocol):
    """People, their sender identities, roles and keys."""

    def person(self, person_id: str) -> Person | None:
        """The person with this canonical id (a leading `user:` is accepted), or None."""
        ...

    def resolve(self, kind: IdentityKind, identity: str) -> Person | None:
        """The person this sender identity belongs to, or None; raises `IdentityRefused`
        for identity text with refused characters."""
        ...

    def people(self) -> Sequence[Person]:
        """Everyone, by id."""
        ...


def require_person(directory: Directory, kind: IdentityKind, identity: str) -> Person:
    """`directory.resolve`, raising `UnknownPerson` when nobody has the identity."""
    person = directory.resolve(kind, identity)
    if person is None:
        raise UnknownPerson(kind.value, identity)
    return person


def person_id_of(actor: str) -> str:
    """`user:priya.shah` → `priya.shah`; other text is returned normalised."""
    return normalized(actor.removeprefix("user:"), what="person id")


Index = tuple[dict[str, "Person"], dict[tuple[IdentityKind, str], "Person"]]
"""People by canonical id, and by (identity kind, normalised identity)."""


class IndexedDirectory:
    """The `Directory` answers over an index of people; a subclass's `_load` gives the
    current index (read, fetched or cached as its source wants) or raises
    `DirectoryInvalid`."""

    def _load(self) -> Index:
        raise NotImplementedError

    def person(self, person_id: str) -> Person | None:
        """The person with this id (`user:` prefix accepted), or None."""
        try:
            key = person_id_of(person_id)
        except IdentityRefused:
            return None
        return self._load()[0].get(key)

    def resolve(self, kind: IdentityKind, identity: str) -> Person | None:
        """The person with this sender identity, or None; `IdentityRefused` for refused text."""
        key = normalized(identity, what=f"{kind.value} identity")
        return self._load()[1].get((kind, key))

    def people(self) -> list[Person]:
        """Everyone (the source's active people), by id."""
        return sorted(self._load()[0].values(), key=lambda person: person.id)


class FileDirectory(IndexedDirectory):
    """A `Directory` read from a TOML file (re-read when the file changes):

    ```toml
    [people."priya.shah"]
    name = "Priya Shah"
    email = "priya.shah@bank.example"
    roles = ["sponsor"]
    ssh_keys = ["ssh-ed25519 AAAAC3Nz… priya@laptop"]
    identities = { github = ["priya-shah"], jira = ["5b10a2844c20165700ede21g"] }
    ```

    `path=None` is a directory with nobody in it: every sender is unknown. A file that cannot
    be read, an unknown role or kind, a refused character, or one identity claimed by two
    people raises `DirectoryInvalid` naming the file and the entry.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._people: dict[str, Person] = {}
        self._index: dict[tuple[IdentityKind, str], Person] = {}

    def _load(self) -> tuple[dict[str, Person], dict[tuple[IdentityKind, str], Person]]:
        if self.path is None:
            return {}, {}
        with self._lock:
            try:
                stat = os.stat(self.path)
            except OSError as err:
                raise DirectoryInvalid(f"directory {self.path}: {err.strerror}") from err
            stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            if stamp != self._stamp:
                self._people, self._index = read_directory(self.path)
                self._stamp = stamp
            return self._people, self._index


def read_directory(
    path: Path,
) -> tuple[dict[str, Person], dict[tuple[IdentityKind, str], Person]]:
    """The people of a directory file and the index of their identities; `DirectoryInvalid`
    names the file and the entry that is wrong."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise DirectoryInvalid(f"directory {path}: {err}") from err
    unknown = set(document) - {"people"}
    if unknown:
        raise DirectoryInvalid(f"directory {path}: unknown tables {sorted(unknown)}")
    entries = document.get("people", {})
    if not isinstance(entries, dict):
        raise DirectoryInvalid(f"directory {path}: `people` must be a table of people")
    people: dict[str, Person] = {}
    index: dict[tuple[IdentityKind, str], Person] = {}
    for raw_id, entry in entries.items():
        try:
            person = person_from_entry(raw_id, entry)
        except (IdentityRefused, ValueError, TypeError) as err:
            raise DirectoryInvalid(f"directory {path}: person {raw_id!r}: {err}") from err
        if person.id in people:
            raise DirectoryInvalid(f"directory {path}: person {person.id!r} is listed twice")
        people[person.id] = person
        for kind, values in person.identities.items():
            for value in values:
                other = index.setdefault((kind, value), person)
                if other is not person:
                    raise DirectoryInvalid(
                        f"directory {path}: the {kind.value} identity {value!r} belongs to "
                        f"both {other.id!r} and {person.id!r}"
                    )
    shared = key_held_twice(people.values())
    if shared:
        raise DirectoryInvalid(f"directory {path}: {shared}")
    return people, index


def key_held_twice(people: Iterable[Person]) -> str:
    """Why the directory cannot stand (empty: it can): one SSH key listed for two people,
    who could then sign as either (an approval as one and a sign-off as the other). Keys
    compare by type and key material, not by their comment."""
    holders: dict[tuple[str, ...], str] = {}
    for person in people:
        for line in person.ssh_keys:
            material = tuple(line.split()[:2])
            other = holders.setdefault(material, person.id)
            if other != person.id:
                key = f"{material[0]} …{material[-1][-12:]}"
                return f"the SSH key {key} belongs to both {other!r} and {person.id!r}"
    return ""


PERSON_KEYS = {"name", "email", "roles", "identities", "ssh_keys"}


def person_from_entry(raw_id: str, entry: Any) -> Person:
    """One person from a directory entry (a TOML table, or a SCIM user mapped to the same keys:
    name, email, roles, identities, ssh_keys), checked as the file's entries are; raises
    `IdentityRefused`, `ValueError` or `TypeError` naming what is wrong."""
    if not isinstance(entry, dict):
        raise TypeError("must be a table")
    unknown = set(entry) - PERSON_KEYS
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}")
    person_id = normalized(raw_id, what="person id")
    if not PERSON_ID.fullmatch(person_id):
        raise ValueError("a person id is lower case a-z, 0-9, '.', '_' or '-'")
    name = check_identity(str(entry.get("name", person_id)), what="name")
    roles = frozenset(Role(role) for role in _strings(entry.get("roles", []), "roles"))
    identities: dict[IdentityKind, tuple[str, ...]] = {}
    raw_identities = entry.get("identities", {})
    if not isinstance(raw_identities, dict):
        raise TypeError("`identities` must be a table of lists")
    for kind, values in raw_identities.items():
        identities[IdentityKind(kind)] = tuple(
            normalized(value, what=f"{kind} identity") for value in _strings(values, kind)
        )
    keys = tuple(key.strip() for key in _strings(entry.get("ssh_keys", []), "ssh_keys"))
    for key in keys:
        if not key.startswith(("ssh-ed25519 ", "ecdsa-sha2-", "ssh-rsa ", "sk-")):
            raise ValueError(f"ssh key {key[:30]!r} is not an OpenSSH public key line")
    email = str(entry.get("email", ""))
    if email:
        check_identity(email, what="email")
    return Person(
        id=person_id, name=name, email=email, roles=roles, identities=identities, ssh_keys=keys
    )


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError(f"`{what}` must be a list of strings")
    return list(value)
