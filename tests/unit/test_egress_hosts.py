"""Host names and IP literals in every spelling: one canonical form for the allow-list, the
operator's `resolve` map and the proxy's address check."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codefactory.sandbox.egress import (
    EgressPolicy,
    canonical_host,
    is_address,
    parse_port,
    split_authority,
)

LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "127.1",
    "127.0.1",
    "0x7f000001",
    "0X7F000001",
    "2130706433",
    "017700000001",
    "0177.0.0.1",
    "0x7f.1",
    "0x7f.0.0.0x1",
    "127.0.0.1.",
    "[::ffff:127.0.0.1]",
    "[::FFFF:7f00:1]",
    "[0:0:0:0:0:ffff:7f00:1]",
    "[0000:0000:0000:0000:0000:ffff:127.0.0.1]",
    "::ffff:127.0.0.1",  # urlsplit's hostname drops the brackets
]


@pytest.mark.parametrize("spelling", LOOPBACK_SPELLINGS)
def test_every_spelling_of_loopback_is_one_address(spelling: str) -> None:
    assert canonical_host(spelling) == "127.0.0.1"
    assert is_address(canonical_host(spelling))


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("files.pythonhosted.org", "files.pythonhosted.org"),
        ("my_host-1.internal", "my_host-1.internal"),
        ("1.2.3.4x", "1.2.3.4x"),  # not numeric at the end: a name, resolved and screened
        ("[::1]", "::1"),
        ("[0:0:0:0:0:0:0:1]", "::1"),
        ("[2606:4700:4700:0:0:0:0:1111]", "2606:4700:4700::1111"),
        ("[64:ff9b::127.0.0.1]", "64:ff9b::7f00:1"),
        ("0", "0.0.0.0"),
        ("0x", "0.0.0.0"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
        ("025177524776", "169.254.169.254"),
        ("10.0x10.010.8", "10.16.8.8"),
        ("4294967295", "255.255.255.255"),
    ],
)
def test_a_host_has_one_canonical_spelling(spelling: str, canonical: str) -> None:
    assert canonical_host(spelling) == canonical


@pytest.mark.parametrize(
    "spelling",
    [
        "",
        "4294967296",  # past 32 bits
        "256.0.0.1",
        "1.2.3.256",
        "1.2.65536",
        "1.2.3.4.5",
        "08.0.0.1",  # not octal
        "1..2",
        "example.0x1",  # ends in a number but is no address
        "example.com.1",
        "1.2.3.4 junk",
        "127.1\tx",
        "exa mple.com",
        "-leading.example.com",
        "a" * 64 + ".com",
        "exa%2emple.com",
        "ex@mple.com",
        "[127.0.0.1]",  # brackets only hold IPv6
        "[fe80::1%25eth0]",
        "[fe80::1%eth0]",
        "[::ffff:0x7f.1]",
        "\u212aevil.com",  # Kelvin sign, lower-cases to k
        "exämple.com",
    ],
)
def test_what_is_neither_a_name_nor_an_address_is_refused(spelling: str) -> None:
    with pytest.raises(ValueError):
        canonical_host(spelling)


@st.composite
def ipv4_spellings(draw: st.DrawFn) -> tuple[int, str]:
    """An IPv4 address and one of inet_aton's spellings of it: 1 to 4 parts, each decimal,
    octal or hexadecimal, the last one filling the remaining bytes."""
    value = draw(st.integers(0, 2**32 - 1))
    parts_count = draw(st.integers(1, 4))
    octets = value.to_bytes(4, "big")
    parts = [*octets[: parts_count - 1], int.from_bytes(octets[parts_count - 1 :], "big")]
    spelled = []
    for part in parts:
        form = draw(st.sampled_from(["dec", "oct", "hex", "HEX"]))
        if form == "dec":
            spelled.append(str(part))
        elif form == "oct":
            spelled.append("0" + format(part, "o"))
        else:
            text = "0x" + format(part, "x")
            spelled.append(text.upper() if form == "HEX" else text)
    return value, ".".join(spelled)


@given(ipv4_spellings())
def test_any_inet_aton_spelling_is_read_as_the_resolver_reads_it(spelling: tuple[int, str]) -> None:
    value, text = spelling
    assert socket.inet_aton(text) == value.to_bytes(4, "big")  # what getaddrinfo would use
    assert canonical_host(text) == str(ipaddress.IPv4Address(value))
    assert canonical_host(f"[::ffff:{ipaddress.IPv4Address(value)}]") == canonical_host(text)


@given(st.integers(0, 2**128 - 1))
def test_any_ipv6_spelling_is_read_as_its_address(value: int) -> None:
    ip = ipaddress.IPv6Address(value)
    expected = str(ip.ipv4_mapped or ip)
    assert canonical_host(f"[{ip.exploded}]") == expected
    assert canonical_host(f"[{ip.compressed.upper()}]") == expected


@pytest.mark.parametrize(
    ("authority", "parts"),
    [
        ("example.com", ("example.com", "")),
        ("example.com:8080", ("example.com", "8080")),
        ("example.com:", ("example.com", "")),
        ("[::1]", ("[::1]", "")),
        ("[::1]:443", ("[::1]", "443")),
        ("0x7f.1:80", ("0x7f.1", "80")),
    ],
)
def test_an_authority_splits_into_host_and_port(authority: str, parts: tuple[str, str]) -> None:
    assert split_authority(authority) == parts


@pytest.mark.parametrize("authority", ["::1:443", "::1", "[::1", "[::1]x", "[::1]443", "a:b:c"])
def test_an_ipv6_address_without_brackets_is_no_authority(authority: str) -> None:
    with pytest.raises(ValueError):
        split_authority(authority)


@pytest.mark.parametrize("text", ["0", "65536", "99999", "-1", "+80", " 80", "8_0", "\u00b3", ""])
def test_a_port_is_a_plain_number_in_range(text: str) -> None:
    with pytest.raises(ValueError):
        parse_port(text)


def test_a_port_in_range_is_read() -> None:
    assert [parse_port(t) for t in ["1", "80", "0443", "65535"]] == [1, 80, 443, 65535]


def test_the_allow_list_matches_names_and_addresses_in_their_canonical_spelling() -> None:
    policy = EgressPolicy(
        allow=("Models.Test", "0x7f.1:8080", "[::FFFF:10.0.0.1]:443", "2606:4700::1")
    )
    assert policy.decide("models.test.", 443) == (True, "allowed by 'Models.Test'")
    assert policy.decide("MODELS.TEST", 80)[0]
    assert not policy.decide("models.test", 8080)[0]
    for spelling in ["127.0.0.1", "2130706433", "[::ffff:127.0.0.1]", "017700000001"]:
        assert policy.decide(spelling, 8080) == (True, "allowed by '0x7f.1:8080'")
    assert policy.decide("10.0.0.1", 443)[0]
    assert policy.decide("[2606:4700:0:0::1]", 443)[0]
    assert policy.decide("bad host", 443) == (False, "not a host name or address: 'bad host'")


def test_a_wildcard_matches_subdomains_and_never_an_address() -> None:
    policy = EgressPolicy(allow=("*.example.com", "*.0.1", "*.1"))
    assert policy.decide("a.example.com", 443)[0]
    assert policy.decide("A.B.Example.Com.", 80)[0]
    assert not policy.decide("example.com", 443)[0]
    assert not policy.decide("evilexample.com", 443)[0]
    for spelling in ["127.0.0.1", "127.1", "10.0.0.1", "0x7f.1"]:
        assert policy.decide(spelling, 443) == (False, "not on the egress allow-list")


def test_the_operators_map_is_found_by_any_spelling_of_its_name() -> None:
    policy = EgressPolicy(
        resolve={"Index.Test": "127.0.0.1:3141", "v6.test": "[::1]:8080", "plain.test": "::1"}
    )
    assert policy.address("index.test.", 443) == ("127.0.0.1", 3141)
    assert policy.address("v6.test", 80) == ("::1", 8080)
    assert policy.address("plain.test", 443) == ("::1", 443)
    assert policy.address("127.0.0.1", 3141) is None
    assert policy.address("bad host", 80) is None


@pytest.mark.parametrize("entry", ["127.0.0.1:0", "127.0.0.1:http", ":8080", "[::1]x"])
def test_a_malformed_map_entry_is_an_error_not_a_guess(entry: str) -> None:
    with pytest.raises(ValueError):
        EgressPolicy(resolve={"index.test": entry}).address("index.test", 80)
