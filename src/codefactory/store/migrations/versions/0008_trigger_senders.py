"""trigger senders: who sent and who caused a trigger; deliveries found by body digest
(issue 11, items 2 and 6)

`trigger_details` gains `sender_kind`, `sender` (the identity the signed delivery names) and
`caused_by` (`user:<person id>` from the directory). `deliveries.payload_digest` is indexed:
a repeated body from one source is one run whatever its delivery id.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("trigger_details", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("sender_kind", sa.String(length=32), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("sender", sa.String(length=256), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("caused_by", sa.String(length=256), nullable=False, server_default="")
        )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_deliveries_source_digest", ["source", "payload_digest"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_source_digest")
    with op.batch_alter_table("trigger_details", schema=None) as batch_op:
        batch_op.drop_column("caused_by")
        batch_op.drop_column("sender")
        batch_op.drop_column("sender_kind")
