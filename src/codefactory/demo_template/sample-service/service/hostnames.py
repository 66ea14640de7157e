"""Host name normalisation for outbound payment callbacks."""

import os

import idna


class InvalidHostname(ValueError):
    """The host name cannot be encoded for DNS."""


def to_ascii(hostname: str) -> str:
    """The ASCII (punycode) form of an internationalised host name."""
    try:
        return idna.encode(hostname.strip().rstrip("."), uts46=True).decode("ascii")
    except idna.IDNAError as err:
        raise InvalidHostname(f"{hostname!r}: {err}") from None


def to_unicode(hostname: str) -> str:
    """The display form of an ASCII host name."""
    return idna.decode(hostname)


def same_host(left: str, right: str) -> bool:
    """Whether two spellings name the same host."""
    return to_ascii(left) == to_ascii(right)
