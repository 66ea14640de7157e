"""one delivery per body: `deliveries (source, payload_digest)` becomes unique

A repeated body from one source is one delivery, so one run, because each path looks for
an earlier copy before it inserts. The group-commit writer looks inside its transaction,
under the audit log's append lock that serializes every store write; the forge-review and
ServiceNow-notice paths look before theirs, so two `serve` processes sharing the database
could each miss the other's insert. The database now refuses the second row, as it refuses
a repeated delivery id, and the sender's retry is answered as a copy.

A database that already holds a body twice (stored by such a race before this revision) is
not changed: the upgrade stops and names the copies, since which of their runs stands is a
decision for a person, not for a migration.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SHOWN = 10
"""How many stored copies the refusal names."""


def upgrade() -> None:
    copies = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT source, payload_digest, COUNT(*) AS n FROM deliveries "
                "GROUP BY source, payload_digest HAVING COUNT(*) > 1 "
                "ORDER BY source, payload_digest"
            )
        )
        .all()
    )
    if copies:
        from codefactory.store.db import StoreUnavailable

        named = "; ".join(f"{s} {d} ({n} rows)" for s, d, n in copies[:SHOWN])
        more = f" and {len(copies) - SHOWN} more" if len(copies) > SHOWN else ""
        raise StoreUnavailable(
            f"cannot make deliveries unique by body (migration 0012): {len(copies)} "
            f"{'body is' if len(copies) == 1 else 'bodies are'} stored more than once from one "
            f"source: {named}{more}. Nothing was changed; decide which delivery of each "
            "stands (each may have its own run), then delete the other rows"
        )
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_deliveries_source_digest")
        batch.create_index("ix_deliveries_source_digest", ["source", "payload_digest"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_deliveries_source_digest")
        batch.create_index(
            "ix_deliveries_source_digest", ["source", "payload_digest"], unique=False
        )
