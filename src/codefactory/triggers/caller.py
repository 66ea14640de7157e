"""Who runs a CLI command: the logged-in person, never a name the ticket carries.

Today the caller is the OS account running `codefactory` (a `unix` identity in the
directory). `Caller` is the seam for another login (an OIDC session from `codefactory
login`): whatever produces one, `caller_person` maps it through the directory.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass

from codefactory.identity.directory import Directory, IdentityKind, Person, require_person


@dataclass(frozen=True, kw_only=True)
class Caller:
    """An authenticated caller: the identity and the kind of system that vouches for it."""

    kind: IdentityKind
    identity: str


def local_caller() -> Caller:
    """The OS account running this process (its real user id), as a `unix` identity."""
    return Caller(kind=IdentityKind.UNIX, identity=pwd.getpwuid(os.getuid()).pw_name)


def caller_person(directory: Directory, caller: Caller | None = None) -> Person:
    """The directory person of `caller` (default: `local_caller()`); raises `UnknownPerson`
    when nobody has the identity, `IdentityRefused` for refused identity text."""
    found = caller or local_caller()
    return require_person(directory, found.kind, found.identity)
