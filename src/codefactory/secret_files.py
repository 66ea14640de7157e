"""Credentials kept in files on the host (a token, a password, a key), read when used so a
rotated file needs no restart."""

from __future__ import annotations

from pathlib import Path


class SecretUnreadable(Exception):
    """No file is configured, it cannot be read, or it is empty (the message says which,
    never the content)."""


def read_secret(path: Path | None, what: str) -> str:
    """The stripped content of the `what` file at `path` (`"Slack bot token"`); raises
    `SecretUnreadable`."""
    if path is None:
        raise SecretUnreadable(f"no {what} is configured")
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise SecretUnreadable(f"the {what} file {path} cannot be read: {err.strerror}") from None
    if not value:
        raise SecretUnreadable(f"the {what} file {path} is empty")
    return value
