"""The store's database URL: which dialects the factory runs on, and how a URL is shown.

A URL is an SQLAlchemy URL (RFC 1738 form, `dialect[+driver]://user:password@host:port/db`).
Its password is never shown: every message and log line renders it with the password
replaced by `***` (`make_url(...).render_as_string(hide_password=True)`).
"""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

DIALECTS = ("sqlite", "postgresql")
"""The databases the store's migrations and queries are written and tested for."""

POSTGRESQL_DRIVER = "psycopg"
"""psycopg 3, the driver a bare `postgresql://` URL is given (SQLAlchemy's default would be
psycopg2, which the factory does not ship)."""


class DatabaseUrlRefused(ValueError):
    """The database URL cannot be parsed, or names a dialect the store does not support;
    the message shows the URL without its password."""


def shown(url: str | URL) -> str:
    """`url` for logs and messages: its password replaced by `***`; a string that is not a
    URL at all is shown as `<unparsable URL>` (it could be a password typed in the wrong
    place)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return "<unparsable URL>"
    hidden = {key: "***" for key in parsed.query if key.lower() in SECRET_QUERY_KEYS}
    return parsed.update_query_dict(hidden).render_as_string(hide_password=True)


SECRET_QUERY_KEYS = frozenset({"password", "sslpassword", "passfile", "sslkey"})
"""Query parameters libpq reads as (or as the place of) a secret: shown as `***` too."""


def database_url(url: str) -> URL:
    """Parse `url` as a store URL: SQLite (`sqlite:///path`) or PostgreSQL
    (`postgresql[+psycopg]://…`, the driver made psycopg 3). Raises DatabaseUrlRefused for
    anything else, naming the dialect and the URL without its password."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # not chained: SQLAlchemy's message quotes the whole string, password and all
        raise DatabaseUrlRefused(
            "the database URL (CODEFACTORY_DATABASE_URL) is not an SQLAlchemy URL of the form "
            "dialect[+driver]://user@host:port/database"
        ) from None
    dialect = parsed.get_backend_name()
    if dialect not in DIALECTS:
        raise DatabaseUrlRefused(
            f"the database URL {shown(parsed)} (CODEFACTORY_DATABASE_URL) names the dialect "
            f"{dialect!r}; the store runs on {' or '.join(DIALECTS)} only"
        )
    if dialect == "postgresql" and parsed.drivername != f"postgresql+{POSTGRESQL_DRIVER}":
        if "+" in parsed.drivername:
            driver = parsed.drivername.partition("+")[2]
            raise DatabaseUrlRefused(
                f"the database URL {shown(parsed)} names the driver {driver!r}; PostgreSQL "
                f"is reached through psycopg 3 (postgresql+{POSTGRESQL_DRIVER}://…)"
            )
        parsed = parsed.set(drivername=f"postgresql+{POSTGRESQL_DRIVER}")
    return parsed
