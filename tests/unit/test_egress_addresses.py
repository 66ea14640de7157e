"""Which resolved addresses the egress proxy may connect to: only globally routable ones that
are not the host's own, in every IPv6 spelling that embeds an IPv4 address."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codefactory.sandbox import egress
from codefactory.sandbox.egress import (
    HostAddresses,
    fib_trie_locals,
    forbidden_address,
    host_addresses,
    if_inet6_addresses,
    ipv6_route_locals,
    screen_addresses,
)

REFUSED = [
    ("127.0.0.1", "loopback address (127.0.0.0/8)"),
    ("127.255.255.254", "loopback address"),
    ("0.0.0.0", "unspecified ('this network') address (0.0.0.0/8)"),
    ("0.1.2.3", "unspecified ('this network') address"),
    ("10.1.2.3", "private address, RFC 1918 (10.0.0.0/8)"),
    ("172.16.0.1", "private address, RFC 1918 (172.16.0.0/12)"),
    ("172.31.255.255", "private address, RFC 1918"),
    ("192.168.1.1", "private address, RFC 1918 (192.168.0.0/16)"),
    ("100.64.0.1", "shared (carrier-grade NAT) address, RFC 6598 (100.64.0.0/10)"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("169.254.169.254", "link-local address (169.254.0.0/16)"),
    ("192.0.0.8", "IETF protocol assignment"),
    ("192.88.99.1", "retired 6to4 relays"),
    ("224.0.0.1", "multicast address (224.0.0.0/4)"),
    ("239.255.255.250", "multicast address"),
    ("240.0.0.1", "reserved address, RFC 1112 (240.0.0.0/4)"),
    ("255.255.255.255", "the broadcast address (255.255.255.255/32)"),
    ("::", "the unspecified address (::/128)"),
    ("::1", "the loopback address (::1/128)"),
    ("fe80::1", "link-local address (fe80::/10)"),
    ("fe80::1%eth0", "fe80::1 is a link-local address"),
    ("fd00::1", "unique local (private) address, RFC 4193 (fc00::/7)"),
    ("fc12:3456::1", "unique local (private) address"),
    ("fec0::1", "site-local address"),
    ("ff02::1", "multicast address (ff00::/8)"),
    ("ff0e::1", "multicast address"),
    ("100::1", "discard-only address, RFC 6666"),
    ("2001:2::1", "IETF protocol assignment, RFC 2928 (2001::/23)"),
    ("5f00::1", "outside the global unicast range (2000::/3)"),
    ("4000::1", "outside the global unicast range"),
    ("::2:3:4:5", "reserved address (::/8)"),
    # every IPv6 spelling that embeds an IPv4 address is judged by that address first
    ("::ffff:127.0.0.1", "IPv4-mapped 127.0.0.1: 127.0.0.1 is a loopback address"),
    ("0:0:0:0:0:ffff:7f00:1", "IPv4-mapped 127.0.0.1"),
    ("::ffff:169.254.169.254", "169.254.169.254 is a link-local address"),
    ("::ffff:10.0.0.1", "10.0.0.1 is a private address"),
    ("::127.0.0.1", "embeds 127.0.0.1 (IPv4-compatible): 127.0.0.1 is a loopback"),
    ("::8.8.8.8", "IPv4-compatible address (deprecated), RFC 4291 (::/96)"),
    ("64:ff9b::127.0.0.1", "embeds 127.0.0.1 (NAT64): 127.0.0.1 is a loopback"),
    ("64:ff9b::a9fe:a9fe", "embeds 169.254.169.254 (NAT64)"),
    ("64:ff9b:1::7f00:1", "embeds 127.0.0.1 (NAT64)"),
    ("64:ff9b:1::808:808", "local-use NAT64 address, RFC 8215 (64:ff9b:1::/48)"),
    ("2002:7f00:1::1", "embeds 127.0.0.1 (6to4): 127.0.0.1 is a loopback"),
    ("2002:a9fe:a9fe::", "embeds 169.254.169.254 (6to4)"),
    ("2002:808:808::1", "6to4 address (relays retired by RFC 7526) (2002::/16)"),
    # Teredo: server 8.8.8.8, client 127.0.0.1 (stored inverted, RFC 4380 §4)
    ("2001:0:808:808:0:0:80ff:fffe", "embeds 127.0.0.1 (Teredo client)"),
    ("2001:0:7f00:1::", "embeds 127.0.0.1 (Teredo server)"),
    ("2001:0:808:808:0:0:f7f7:f7f7", "Teredo address, RFC 4380 (2001::/32)"),
    ("not-an-address", "is not an IP address"),
    ("", "is not an IP address"),
]
ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "151.101.0.223",
    "100.63.255.255",  # just below 100.64/10
    "100.128.0.0",  # just above it
    "172.32.0.1",  # just above 172.16/12
    "223.255.255.254",
    "2606:4700:4700::1111",
    "2a00:1450:4001:82a::200e",
    "::ffff:8.8.8.8",  # the same socket reaches 8.8.8.8
    "64:ff9b::808:808",  # the well-known NAT64 prefix is globally reachable
    "203.0.113.80",  # documentation ranges are no internal network (a test PyPI mirror here)
    "198.18.0.1",  # nor is the benchmarking range
]


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_an_address_that_is_not_globally_routable_is_refused_with_its_rule(
    address: str, reason: str
) -> None:
    assert reason in forbidden_address(address)


@pytest.mark.parametrize("address", ALLOWED)
def test_a_globally_routable_address_passes(address: str) -> None:
    assert forbidden_address(address) == ""


FORBIDDEN_V4 = [
    ipaddress.IPv4Network(n)
    for n in ["0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
              "172.16.0.0/12", "192.0.0.0/24", "192.168.0.0/16", "224.0.0.0/4",
              "240.0.0.0/4"]
]  # fmt: skip


@st.composite
def forbidden_v4(draw: st.DrawFn) -> ipaddress.IPv4Address:
    network = draw(st.sampled_from(FORBIDDEN_V4))
    return network[draw(st.integers(0, network.num_addresses - 1))]


def embeddings(v4: ipaddress.IPv4Address) -> list[str]:
    """Every IPv6 spelling of the proxy's rules that carries `v4`."""
    n = int(v4)
    teredo_client = (0x2001 << 112) | (0x08080808 << 64) | (n ^ 0xFFFFFFFF)
    return [
        f"::ffff:{v4}",
        f"0:0:0:0:0:ffff:{n >> 16:x}:{n & 0xFFFF:x}",
        f"::{v4}" if n > 1 else f"::ffff:{v4}",
        f"64:ff9b::{v4}",
        f"64:ff9b:1::{v4}",
        str(ipaddress.IPv6Address((0x2002 << 112) | (n << 80) | 1)),
        str(ipaddress.IPv6Address(teredo_client)),
    ]


@given(forbidden_v4())
def test_a_forbidden_ipv4_address_is_refused_in_every_ipv6_spelling(
    v4: ipaddress.IPv4Address,
) -> None:
    assert forbidden_address(str(v4))
    for spelling in embeddings(v4):
        assert str(v4) in forbidden_address(spelling), spelling


@given(st.integers(0, 2**32 - 1))
def test_an_ipv4_address_and_its_mapped_and_nat64_forms_are_judged_alike(n: int) -> None:
    v4 = ipaddress.IPv4Address(n)
    refused = bool(forbidden_address(str(v4)))
    assert bool(forbidden_address(f"::ffff:{v4}")) is refused
    assert bool(forbidden_address(f"64:ff9b::{v4}")) is refused


def test_screening_keeps_the_passing_addresses_in_order_and_says_why_the_rest_failed() -> None:
    passing, refused = screen_addresses(
        ["127.0.0.1", "::1", "2606:4700:4700::1111", "8.8.8.8", "8.8.8.8", "10.0.0.1"]
    )
    assert passing == ("2606:4700:4700::1111", "8.8.8.8")
    assert refused == (
        "127.0.0.1 is a loopback address (127.0.0.0/8)",
        "::1 is the loopback address (::1/128)",
        "10.0.0.1 is a private address, RFC 1918 (10.0.0.0/8)",
    )


def test_the_hosts_own_addresses_are_refused() -> None:
    own = [n.network_address for n in host_addresses()]
    if not own:
        pytest.skip("this machine has no address besides loopback")
    for address in own:
        assert forbidden_address(str(address)) == f"{address} is one of this host's own addresses"
    v4 = [a for a in own if a.version == 4]
    for address in v4:
        assert "one of this host's own addresses" in forbidden_address(f"::ffff:{address}")
    assert not any(a.is_loopback for a in own)  # loopback has its own rule


FIB_TRIE = """\
Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     |-- 9.9.9.0
        /24 host LOCAL
     +-- 192.0.2.0/24 2 0 2
        +-- 192.0.2.0/30 2 0 2
           |-- 192.0.2.0
              /24 link UNICAST
           |-- 192.0.2.2
              /32 host LOCAL
        |-- 192.0.2.255
           /32 link BROADCAST
"""
IF_INET6 = """\
fd000000000000000000000000000002 04 40 00 82     eth0
00000000000000000000000000000001 01 80 10 80       lo
"""
IPV6_ROUTE = """\
fd000000000000000000000000000000 40 00000000000000000000000000000000 00 \
00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0
fd000000000000000000000000000002 80 00000000000000000000000000000000 00 \
00000000000000000000000000000000 00000000 00000003 00000000 80200001     eth0
26064700009900000000000000000000 40 00000000000000000000000000000000 00 \
00000000000000000000000000000000 00000000 00000003 00000000 80200001       lo
"""


def test_the_kernels_tables_give_the_local_addresses_and_prefixes() -> None:
    assert [str(n) for n in fib_trie_locals(FIB_TRIE)] == [
        "127.0.0.0/8",
        "127.0.0.1/32",
        "9.9.9.0/24",
        "192.0.2.2/32",
    ]
    assert [str(n) for n in if_inet6_addresses(IF_INET6)] == ["fd00::2/128", "::1/128"]
    assert [str(n) for n in ipv6_route_locals(IPV6_ROUTE)] == [
        "fd00::2/128",
        "2606:4700:99::/64",
    ]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_hosts_addresses_are_read_again_after_a_second(tmp_path: Path) -> None:
    (tmp_path / "fib_trie").write_text(FIB_TRIE)
    clock = Clock()
    addresses = HostAddresses(tmp_path, clock=clock)
    first = addresses.get()
    assert first is not None and [str(n) for n in first] == ["9.9.9.0/24", "192.0.2.2/32"]
    (tmp_path / "if_inet6").write_text(IF_INET6)
    clock.now += 0.5
    assert addresses.get() == first  # cached
    clock.now += 0.5
    assert [str(n) for n in addresses.get() or ()] == ["9.9.9.0/24", "192.0.2.2/32", "fd00::2/128"]


def test_when_the_hosts_addresses_cannot_be_read_every_address_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unreadable = HostAddresses(tmp_path / "absent")
    assert unreadable.get() is None
    monkeypatch.setattr(egress, "_HOST_ADDRESSES", unreadable)
    assert forbidden_address("8.8.8.8") == (
        "8.8.8.8 cannot be checked: this host's own addresses could not be read"
    )
