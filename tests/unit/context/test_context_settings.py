"""Vendor instances are reached over https; plain http only on this host."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from codefactory.context.settings import ServiceSettings


def test_plain_http_is_refused_unless_it_stays_on_this_host() -> None:
    assert ServiceSettings(base_url="https://sentry.bank.example/").base_url == (
        "https://sentry.bank.example"
    )
    assert ServiceSettings(base_url="http://127.0.0.1:8080").base_url == "http://127.0.0.1:8080"
    with pytest.raises(ValidationError, match="plain http to another host"):
        ServiceSettings(base_url="http://sentry.bank.example")
    with pytest.raises(ValidationError, match="https URL"):
        ServiceSettings(base_url="ftp://sentry.bank.example")
