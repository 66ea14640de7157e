"""Callback URL validation: only allow-listed hosts receive payment notifications."""

from urllib.parse import urlsplit

from service.hostnames import InvalidHostname, to_ascii

ALLOWED_CALLBACK_HOSTS = frozenset({"xn--bcher-kva.example", "payments.example.com"})


def callback_allowed(url: str) -> bool:
    """Whether a merchant's callback URL points at an allow-listed host over HTTPS."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        return False
    try:
        return to_ascii(parts.hostname) in ALLOWED_CALLBACK_HOSTS
    except InvalidHostname:
        return False
