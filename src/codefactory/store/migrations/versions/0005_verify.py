"""verify: check baselines and test maps (issue 6)

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "verify_cache",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("check", sa.String(length=64), nullable=False),
        sa.Column("commit", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("verify_cache", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_verify_cache_commit"), ["commit"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("verify_cache", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_verify_cache_commit"))
    op.drop_table("verify_cache")
