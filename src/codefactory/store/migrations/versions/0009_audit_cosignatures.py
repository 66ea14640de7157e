"""audit cosignatures: witnesses' cosignatures of checkpoints (issue 11, item 5)

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_cosignatures",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("witness_key", sa.String(length=256), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("root_hash", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("cosignature", sa.Text(), nullable=False),
        sa.Column("cosigned_at", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_cosignatures_witness_key", "audit_cosignatures", ["witness_key"])


def downgrade() -> None:
    op.drop_index("ix_audit_cosignatures_witness_key", table_name="audit_cosignatures")
    op.drop_table("audit_cosignatures")
