"""Persistence: SQLite (default) or PostgreSQL behind repositories, Alembic migrations."""

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
