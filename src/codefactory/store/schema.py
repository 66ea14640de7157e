"""The whole schema: every table module imported, so `metadata` holds them all.

Alembic autogeneration and the schema test compare migrations against this metadata.
"""

from __future__ import annotations

from codefactory.store import (  # noqa: F401 - imported for their tables
    identity_tables,
    operations_tables,
    sandbox_tables,
    trigger_tables,
    verify_tables,
)
from codefactory.store.models import Base

metadata = Base.metadata
