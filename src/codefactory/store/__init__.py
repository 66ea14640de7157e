"""Persistence: SQLite (default) or PostgreSQL behind repositories, Alembic migrations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from codefactory.lazy import lazy_exports

if TYPE_CHECKING:
    from codefactory.store.db import open_engine
    from codefactory.store.errors import InvalidTransition, RunNotFound, StoreError
    from codefactory.store.runs import RunStore, RunTransaction

__all__ = [
    "InvalidTransition",
    "RunNotFound",
    "RunStore",
    "RunTransaction",
    "StoreError",
    "open_engine",
]

__getattr__ = lazy_exports(
    __name__,
    globals(),
    {
        "open_engine": "codefactory.store.db",
        "InvalidTransition": "codefactory.store.errors",
        "RunNotFound": "codefactory.store.errors",
        "StoreError": "codefactory.store.errors",
        "RunStore": "codefactory.store.runs",
        "RunTransaction": "codefactory.store.runs",
    },
)
