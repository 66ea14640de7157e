"""Egress policy: which hosts a sandboxed command may reach, and the record of each try.

A sandbox has no network of its own (a new network namespace holding only `lo`). When policy
allows hosts for a phase, the command reaches them only through the host-side proxy
(`proxy.py`), which decides with this policy: an allow-list of `host`, `host:port` or
`*.domain` patterns (a bare host allows ports 80 and 443), default deny. Host names are
compared in one canonical spelling (`canonical_host`): an IP literal in any spelling becomes
its address. Every address a name resolves to is screened (`forbidden_address`): only globally
routable addresses that are not the host's own pass, unless the operator mapped that name
explicitly in `resolve`. Every attempt, allowed or not, becomes an `EgressAttempt`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEFAULT_PORTS = frozenset({80, 443})
PACKAGE_INDEX_HOSTS = (
    "pypi.org",
    "files.pythonhosted.org",
    "registry.npmjs.org",
    "registry.yarnpkg.com",
)
"""The default allow-list of the SETUP phase; every other phase has none. The npm registry
answers at two names: a Yarn 1 `yarn.lock` names every tarball at `registry.yarnpkg.com`, and
Yarn 1 fetches exactly the URL its lock file names (checked against its `integrity`)."""


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

    def widened(
        self, hosts: Sequence[str], resolve: Mapping[str, str] | None = None
    ) -> EgressPolicy:
        """This policy with `hosts` allowed too, and `resolve` (host → `address[:port]`)
        mapping some of them; a ValueError names an entry for a host not in `hosts` (a
        call may steer only what it allows) or one whose address is malformed."""
        mapped = _call_resolve(hosts, resolve or {})
        kept = {k: v for k, v in self.resolve.items() if _canonical_or_none(k) not in mapped}
        return EgressPolicy(
            allow=tuple(dict.fromkeys([*self.allow, *hosts])),
            resolve={**{name: value for name, (_, value) in mapped.items()}, **kept},
        )

    def decide(self, host: str, port: int) -> tuple[bool, str]:
        """Whether `host:port` is allowed by name, and why; both sides compared canonically."""
        name = _canonical_or_none(host)
        if name is None:
            return False, f"not a host name or address: {host!r}"
        for pattern in self.allow:
            if _matches(pattern, name, port):
                return True, f"allowed by {pattern!r}"
        return False, "not on the egress allow-list"

    def address(self, host: str, port: int) -> tuple[str, int] | None:
        """The operator's mapping for `host`, if any, as (address, port); a ValueError when
        that entry is malformed."""
        name = _canonical_or_none(host)
        for key, mapped in self.resolve.items():
            if name is not None and _canonical_or_none(key) == name:
                return _mapped_address(mapped, port)
        return None


def _call_resolve(hosts: Sequence[str], resolve: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """A call's resolve entries by canonical name, each checked against the call's hosts."""
    allowed: set[str | None] = set()
    for pattern in hosts:
        with contextlib.suppress(ValueError):
            allowed.add(_canonical_or_none(_pattern_parts(pattern.strip())[0]))
    checked: dict[str, tuple[str, str]] = {}
    for key, value in resolve.items():
        name = _canonical_or_none(key)
        if name is None or name not in allowed:
            raise ValueError(
                f"resolve entry {key!r} names no host this call allows "
                f"({', '.join(hosts) or 'it allows none'})"
            )
        _mapped_address(value, 1)  # malformed entries fail here, not in the proxy
        checked[name] = (key, value)
    return checked


def _matches(pattern: str, host: str, port: int) -> bool:
    try:
        name, wanted = _pattern_parts(pattern.strip())
    except ValueError:
        return False
    if wanted and (not _PORT.fullmatch(wanted) or int(wanted) != port):
        return False
    if not wanted and port not in DEFAULT_PORTS:
        return False
    if name.startswith("*."):  # a name's subdomains; never an address
        domain = _canonical_or_none(name[2:])
        return domain is not None and not is_address(host) and host.endswith("." + domain)
    return _canonical_or_none(name) == host


def _pattern_parts(pattern: str) -> tuple[str, str]:
    if pattern.count(":") > 1 and not pattern.startswith("["):
        return pattern, ""  # an operator's bare IPv6 address
    return split_authority(pattern)


def _mapped_address(mapped: str, port: int) -> tuple[str, int]:
    host, wanted = _pattern_parts(mapped.strip())
    if not host.strip("[]"):
        raise ValueError(f"a resolve entry without an address: {mapped!r}")
    return host.strip("[]"), parse_port(wanted) if wanted else port


# --- host names and literals -------------------------------------------------------------

_PORT = re.compile(r"[0-9]{1,5}")
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}")
_NUMBER = re.compile(r"[0-9]+|0x[0-9a-f]*")


def split_authority(authority: str) -> tuple[str, str]:
    """`host`, `host:port`, `[v6]` or `[v6]:port` → (host, port text, "" when absent).

    An IPv6 address keeps its brackets; one without them is refused (ValueError), as is
    anything after the closing bracket but a port.
    """
    if authority.startswith("["):
        host, bracket, rest = authority.partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"malformed bracketed address: {authority!r}")
        return host + bracket, rest[1:]
    host, _, port = authority.partition(":")
    if ":" in port:
        raise ValueError(f"an IPv6 address must be in brackets: {authority!r}")
    return host, port


def parse_port(text: str) -> int:
    """A port number, 1..65535, in plain decimal digits (ValueError otherwise)."""
    if not _PORT.fullmatch(text) or not 0 < int(text) < 65536:
        raise ValueError(f"not a port number in 1..65535: {text!r}")
    return int(text)


def canonical_host(host: str) -> str:
    """The one spelling of `host` that the allow-list, `resolve` and the proxy use.

    An IP literal in any spelling a resolver accepts (`127.1`, `0x7f000001`, `2130706433`,
    `017700000001`, `[::ffff:127.0.0.1]`, `[0:0:0:0:0:ffff:7f00:1]`) becomes its address
    (an IPv4-mapped IPv6 address its IPv4 address); a name becomes lower case without its
    final dot. Anything else (a name with a numeric last label that is not an IPv4 literal,
    characters outside letters, digits, `-` and `_`, a scoped IPv6 address) is a ValueError.
    """
    if not host.isascii():
        raise ValueError(f"not an ASCII host name: {host!r}")
    name = host.lower()
    if name.startswith("[") and name.endswith("]"):
        return _canonical_ipv6(name[1:-1])
    if ":" in name:  # a bare IPv6 address: urlsplit's hostname, an operator's entry
        return _canonical_ipv6(name)
    name = name.removesuffix(".")
    labels = name.split(".")
    if _NUMBER.fullmatch(labels[-1]):  # WHATWG URL: a name ending in a number is IPv4
        return str(_parse_ipv4(labels, host))
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"not a host name: {host!r}")
    return name


def is_address(host: str) -> bool:
    """Whether the canonical `host` is an IP address rather than a name."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _canonical_or_none(host: str) -> str | None:
    try:
        return canonical_host(host)
    except ValueError:
        return None


def _canonical_ipv6(text: str) -> str:
    if "%" in text:
        raise ValueError(f"a scoped IPv6 address is not a host: {text!r}")
    ip = ipaddress.IPv6Address(text)
    return str(ip.ipv4_mapped or ip)


def _parse_ipv4(labels: list[str], host: str) -> ipaddress.IPv4Address:
    """inet_aton's forms, as the WHATWG URL standard's IPv4 parser reads them."""
    if len(labels) > 4:
        raise ValueError(f"not an IPv4 address: {host!r}")
    numbers = [_ipv4_number(label, host) for label in labels]
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        raise ValueError(f"IPv4 address out of range: {host!r}")
    value = last
    for index, number in enumerate(head):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _ipv4_number(label: str, host: str) -> int:
    for digits, base in ((r"0x([0-9a-f]*)", 16), (r"0([0-7]*)", 8), (r"([1-9][0-9]*)", 10)):
        if found := re.fullmatch(digits, label):
            return int(found[1] or "0", base)
    raise ValueError(f"not an IPv4 address: {host!r}")


# --- addresses ---------------------------------------------------------------------------

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# What no sandbox may reach: the host and the networks a bank runs its services on. The
# documentation (RFC 5737, 3849, 9637) and benchmarking (RFC 2544) ranges are left open: no
# internal service lives there by any standard, and test networks and package mirrors do
# (this workplace's PyPI mirror answers at 203.0.113.80).
_IPV4_RULES = tuple(
    (ipaddress.IPv4Network(network), what)
    for network, what in (
        ("0.0.0.0/8", "an unspecified ('this network') address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address"),
        ("10.0.0.0/8", "a private address, RFC 1918"),
        ("172.16.0.0/12", "a private address, RFC 1918"),
        ("192.168.0.0/16", "a private address, RFC 1918"),
        ("100.64.0.0/10", "a shared (carrier-grade NAT) address, RFC 6598"),
        ("192.0.0.0/24", "an IETF protocol assignment, RFC 6890"),
        ("192.88.99.0/24", "a reserved address (the retired 6to4 relays), RFC 7526"),
        ("224.0.0.0/4", "a multicast address"),
        ("255.255.255.255/32", "the broadcast address"),
        ("240.0.0.0/4", "a reserved address, RFC 1112"),
    )
)
_IPV6_RULES = tuple(
    (ipaddress.IPv6Network(network), what)
    for network, what in (
        ("::/128", "the unspecified address"),
        ("::1/128", "the loopback address"),
        ("fe80::/10", "a link-local address"),
        ("fc00::/7", "a unique local (private) address, RFC 4193"),
        ("fec0::/10", "a site-local address (deprecated), RFC 3879"),
        ("ff00::/8", "a multicast address"),
        ("64:ff9b:1::/48", "a local-use NAT64 address, RFC 8215"),
        ("::/96", "an IPv4-compatible address (deprecated), RFC 4291"),
        ("::/8", "a reserved address"),
        ("100::/64", "a discard-only address, RFC 6666"),
        ("2001::/32", "a Teredo address, RFC 4380"),
        ("2001::/23", "an IETF protocol assignment, RFC 2928"),
        ("2002::/16", "a 6to4 address (relays retired by RFC 7526)"),
    )
)
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052, globally reachable
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215; the IPv4 in the last 32 bits


def forbidden_address(address: str) -> str:
    """Why the proxy may not connect to `address`; empty when it may.

    Only a globally routable unicast address that is not one of this host's own passes. An
    IPv6 address that embeds an IPv4 one (IPv4-mapped or -compatible, NAT64, 6to4, Teredo) is
    judged by its IPv4 address first. The reason names the address and the rule.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"{address!r} is not an IP address"
    return _why_not(ip)


def screen_addresses(addresses: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the addresses that pass, in order; the reasons for each one refused)."""
    passing: list[str] = []
    refused: list[str] = []
    for address in dict.fromkeys(addresses):
        why_not = forbidden_address(address)
        (refused if why_not else passing).append(why_not or address)
    return tuple(passing), tuple(refused)


def _why_not(ip: IPAddress) -> str:
    if isinstance(ip, ipaddress.IPv6Address):
        ip = ipaddress.IPv6Address(int(ip))  # the scope names a link, never another address
        if ip.ipv4_mapped is not None:  # the same socket reaches the IPv4 address itself
            inner = _why_not(ip.ipv4_mapped)
            return f"{ip} is the IPv4-mapped {ip.ipv4_mapped}: {inner}" if inner else ""
        for form, embedded in _embedded_ipv4(ip):
            inner = _why_not(embedded)
            if inner:
                return f"{ip} embeds {embedded} ({form}): {inner}"
    own = _HOST_ADDRESSES.get()
    if own is None:
        return f"{ip} cannot be checked: this host's own addresses could not be read"
    if any(ip in network for network in own):
        return f"{ip} is one of this host's own addresses"
    return _rule(ip)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _NAT64 or ip in _NAT64_LOCAL:
        return [("NAT64", low32)]
    if int(ip) >> 32 == 0 and int(ip) > 1:  # `::` and `::1` are no IPv4 address
        return [("IPv4-compatible", low32)]
    if ip.sixtofour is not None:
        return [("6to4", ip.sixtofour)]
    if ip.teredo is not None:
        server, client = ip.teredo
        return [("Teredo server", server), ("Teredo client", client)]
    return []


def _rule(ip: IPAddress) -> str:
    if isinstance(ip, ipaddress.IPv4Address):
        return _first_rule(ip, _IPV4_RULES)
    if ip in _NAT64:
        return ""  # the IPv4 address it embeds passed
    found = _first_rule(ip, _IPV6_RULES)
    if not found and ip not in _GLOBAL_UNICAST:
        return f"{ip} is outside the global unicast range ({_GLOBAL_UNICAST})"
    return found


def _first_rule(ip: IPAddress, rules: Iterable[tuple[IPNetwork, str]]) -> str:
    for network, what in rules:
        if ip in network:
            return f"{ip} is {what} ({network})"
    return ""


# --- this host's own addresses -----------------------------------------------------------

HOST_ADDRESSES_MAX_AGE_S = 1.0
"""How long the host's own addresses are cached: one added since counts within a second."""
RTF_LOCAL = 0x80000000  # linux/ipv6_route.h


class HostAddresses:
    """Every address (or local prefix) of this host's interfaces, loopback aside, read fresh.

    From the kernel's own tables of the process's network namespace: the LOCAL routes of
    `fib_trie` (IPv4), `if_inet6` and the RTF_LOCAL routes of `ipv6_route` (IPv6).
    """

    def __init__(
        self, proc: Path = Path("/proc/net"), clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._proc = proc
        self._clock = clock
        self._lock = threading.Lock()
        self._read_at: float | None = None
        self._networks: tuple[IPNetwork, ...] | None = None

    def get(self) -> tuple[IPNetwork, ...] | None:
        """None when they cannot be read: every address is then refused."""
        with self._lock:
            now = self._clock()
            if self._read_at is None or now - self._read_at >= HOST_ADDRESSES_MAX_AGE_S:
                self._networks, self._read_at = self._read(), now
            return self._networks

    def _read(self) -> tuple[IPNetwork, ...] | None:
        try:
            found: list[IPNetwork] = list(fib_trie_locals((self._proc / "fib_trie").read_text()))
        except OSError:
            return None
        for name, parse in (("if_inet6", if_inet6_addresses), ("ipv6_route", ipv6_route_locals)):
            try:
                found += parse((self._proc / name).read_text())
            except OSError:
                pass  # IPv6 is disabled: no IPv6 address of the host's own
        return tuple(n for n in dict.fromkeys(found) if not n.network_address.is_loopback)


_HOST_ADDRESSES = HostAddresses()


def host_addresses() -> tuple[IPNetwork, ...]:
    """This host's own addresses (each a network: a /32 or /128, or a local prefix)."""
    return _HOST_ADDRESSES.get() or ()


def fib_trie_locals(text: str) -> list[ipaddress.IPv4Network]:
    """The LOCAL routes of `/proc/net/fib_trie`: the IPv4 addresses the kernel answers on."""
    found: list[ipaddress.IPv4Network] = []
    leaf = ""
    for line in text.splitlines():
        fields = line.strip().split()
        if fields[:1] == ["|--"] and len(fields) == 2:
            leaf = fields[1]
        elif fields and fields[0].startswith("/") and fields[-1] == "LOCAL" and leaf:
            found.append(ipaddress.IPv4Network(f"{leaf}{fields[0]}", strict=False))
    return found


def if_inet6_addresses(text: str) -> list[ipaddress.IPv6Network]:
    """The addresses listed in `/proc/net/if_inet6`."""
    return [
        ipaddress.IPv6Network((int(fields[0], 16), 128))
        for fields in (line.split() for line in text.splitlines())
        if fields
    ]


def ipv6_route_locals(text: str) -> list[ipaddress.IPv6Network]:
    """The local routes (RTF_LOCAL) of `/proc/net/ipv6_route`."""
    return [
        ipaddress.IPv6Network((int(fields[0], 16), int(fields[1], 16)), strict=False)
        for fields in (line.split() for line in text.splitlines())
        if len(fields) >= 9 and int(fields[8], 16) & RTF_LOCAL
    ]
