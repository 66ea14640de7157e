"""Egress policy: which host names a sandboxed command may reach, and the record of each try.

A sandbox has no network of its own (a new network namespace holding only `lo`). When policy
allows hosts for a phase, the command reaches them only through the host-side proxy
(`proxy.py`), which decides by name with this policy: an allow-list of `host`, `host:port` or
`*.domain` patterns (a bare host allows ports 80 and 443), default deny. A name that resolves
to a loopback, link-local, multicast or unspecified address is refused even when allowed
(the host's own services and cloud metadata stay out of reach), unless the operator mapped
that name explicitly in `resolve`. Every attempt, allowed or not, becomes an `EgressAttempt`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DEFAULT_PORTS = frozenset({80, 443})
PACKAGE_INDEX_HOSTS = ("pypi.org", "files.pythonhosted.org")
"""The default allow-list of the SETUP phase; every other phase has none."""


@dataclass(frozen=True, kw_only=True)
class EgressAttempt:
    """One connection a sandboxed command asked the proxy for."""

    run_id: str
    phase: str
    host: str
    port: int
    allowed: bool
    reason: str
    method: str = "CONNECT"
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def audit_data(self) -> dict[str, Any]:
        """The fields of the `egress-attempted` audit event."""
        return {
            "host": self.host,
            "port": self.port,
            "phase": self.phase,
            "allowed": self.allowed,
            "reason": self.reason,
            "method": self.method,
        }


EgressListener = Callable[[EgressAttempt], None]
"""Receives every egress attempt of a workspace, after the command that made it ends."""


@dataclass(frozen=True)
class EgressPolicy:
    """The hosts one command may reach, and the operator's explicit name → address map."""

    allow: tuple[str, ...] = ()
    resolve: Mapping[str, str] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return bool(self.allow)

    def widened(self, hosts: Sequence[str]) -> EgressPolicy:
        """This policy with `hosts` allowed too."""
        return EgressPolicy(allow=tuple(dict.fromkeys([*self.allow, *hosts])), resolve=self.resolve)

    def decide(self, host: str, port: int) -> tuple[bool, str]:
        """Whether `host:port` is allowed by name, and why."""
        name = host.lower().rstrip(".")
        for pattern in self.allow:
            if _matches(pattern.lower(), name, port):
                return True, f"allowed by {pattern!r}"
        return False, "not on the egress allow-list"

    def address(self, host: str, port: int) -> tuple[str, int] | None:
        """The operator's mapping for `host`, if any, as (address, port)."""
        mapped = self.resolve.get(host.lower().rstrip("."))
        if mapped is None:
            return None
        address, _, mapped_port = mapped.rpartition(":") if ":" in mapped else (mapped, "", "")
        return (address or mapped, int(mapped_port) if mapped_port else port)


def _matches(pattern: str, host: str, port: int) -> bool:
    name, _, wanted = pattern.partition(":")
    if wanted and (not wanted.isdigit() or int(wanted) != port):
        return False
    if not wanted and port not in DEFAULT_PORTS:
        return False
    if name.startswith("*."):
        return host.endswith(name[1:])
    return host == name


def forbidden_address(address: str) -> str:
    """Why a resolved address may not be reached through the proxy; empty when it may."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"not an address: {address}"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return f"resolves to a loopback address ({ip})"
    if ip.is_link_local:
        return f"resolves to a link-local address ({ip})"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return f"resolves to a reserved address ({ip})"
    return ""
