"""repository ids: runs name their repository by canonical id and keep the checkout apart
(issue 10, item 8)

Before, `runs.repository` and `triggers.repository` held the local checkout's absolute path
(policy and the forge used its folder name). The path moves to `runs.repository_path`; both
columns become the path's canonical id, `local:<path>` (docs/repositories.md). A value that
is not an absolute path (a refused delivery's unmapped remote name) is left as it is.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("repository_path", sa.Text(), nullable=False, server_default="")
        )
    op.execute(
        "UPDATE runs SET repository_path = repository, repository = 'local:' || repository "
        "WHERE repository LIKE '/%'"
    )
    op.execute("UPDATE triggers SET repository = 'local:' || repository WHERE repository LIKE '/%'")


def downgrade() -> None:
    op.execute(
        "UPDATE triggers SET repository = substr(repository, 7) WHERE repository LIKE 'local:/%'"
    )
    op.execute("UPDATE runs SET repository = repository_path WHERE repository_path != ''")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("repository_path")
