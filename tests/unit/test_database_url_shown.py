"""A database URL is shown without any secret: the password, and libpq's secret query keys."""

from __future__ import annotations

from codefactory.store.urls import shown


def test_the_password_is_hidden_wherever_the_url_carries_it() -> None:
    url = "postgresql+psycopg://app:S3cret@db.internal/cf?password=S3cret&sslpassword=K3y&sslmode=require"
    text = shown(url)
    assert "S3cret" not in text and "K3y" not in text
    assert text.startswith("postgresql+psycopg://app:***@db.internal/cf?")
    assert "sslmode=require" in text


def test_a_string_that_is_not_a_url_is_not_shown() -> None:
    assert shown("S3cret") == "<unparsable URL>"
