"""identity: agents, keys, tokens, audit checkpoints (issue 4)

Revision ID: 0003
Revises: 0002

The audit log becomes a Merkle log: `audit_events` drops the hash chain (`prev_hash`,
`hash`) for `leaf_hash`, and its `seq` becomes the 0-based leaf index. An existing log is
converted only if its hash chain verifies, so an upgrade never launders tampered history.
The hashing is written out here, not imported, so this migration keeps meaning what it
meant when the application code moves on.
"""

import hashlib
import json
import secrets
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CACHE_LEVEL = 8  # audit_subtrees holds perfect subtrees of 2^8 leaves and more


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "agents",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("display_name", sa.String(length=256), nullable=False),
        sa.Column("issuer", sa.String(length=256), nullable=False),
        sa.Column("owner", sa.String(length=256), nullable=False),
        sa.Column("engines", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=False),
        sa.Column("ssh_public_key", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_agents_status", "agents", ["status"])
    op.create_table(
        "delegation_tokens",
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("agent_id", sa.String(length=128), nullable=False),
        sa.Column("sponsor", sa.String(length=256), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"]),
        sa.PrimaryKeyConstraint("jti"),
    )
    op.create_index("ix_delegation_tokens_run_id", "delegation_tokens", ["run_id"])
    op.create_index("ix_delegation_tokens_agent_id", "delegation_tokens", ["agent_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("origin", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "audit_subtrees",
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("level", "position"),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("root_hash", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_checkpoints_size", "audit_checkpoints", ["size"])
    # A random origin names this log in every checkpoint (c2sp.org/tlog-checkpoint).
    origin = f"codefactory.invalid/audit/{secrets.token_hex(8)}"
    op.get_bind().execute(
        sa.text("INSERT INTO audit_log (id, origin) VALUES (1, :origin)"), {"origin": origin}
    )
    _chain_to_merkle()


def downgrade() -> None:
    """Downgrade schema."""
    _merkle_to_chain()
    op.drop_index("ix_audit_checkpoints_size", table_name="audit_checkpoints")
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_subtrees")
    op.drop_table("audit_log")
    op.drop_index("ix_delegation_tokens_agent_id", table_name="delegation_tokens")
    op.drop_index("ix_delegation_tokens_run_id", table_name="delegation_tokens")
    op.drop_table("delegation_tokens")
    op.drop_index("ix_agents_status", table_name="agents")
    op.drop_table("agents")


# -- the audit log's conversion ----------------------------------------------------------

_COLUMNS = "seq, name, actor, run_id, at, data"


def _record(seq: int, row: Any) -> bytes:
    """RFC 8785 canonical JSON of the leaf record, the stored data being canonical already."""
    return (
        f'{{"actor":{_string(row.actor)},"at":{_string(row.at)},"data":{row.data},'
        f'"name":{_string(row.name)},"run_id":{_string(row.run_id)},"seq":{seq}}}'
    ).encode()


def _string(value: str) -> str:
    """A JSON string as RFC 8785 §3.2.2.2 writes it: minimal escapes, UTF-8 kept."""
    return json.dumps(value, ensure_ascii=False)


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _chain_to_merkle() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(f"SELECT {_COLUMNS}, prev_hash, hash FROM audit_events ORDER BY seq")
    ).all()
    previous = "0" * 64
    for expected, row in enumerate(rows, start=1):
        link = hashlib.sha256(bytes.fromhex(previous) + _record(row.seq, row)).hexdigest()
        if row.seq != expected or row.prev_hash != previous or row.hash != link:
            raise RuntimeError(
                f"audit_events fails its hash chain at seq {expected}: refusing to convert a "
                "tampered log; restore it from a backup or investigate before upgrading"
            )
        previous = row.hash
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("leaf_hash", sa.String(64), nullable=False, server_default=""))
        batch.drop_column("prev_hash")
        batch.drop_column("hash")
    _renumber(bind, -1)
    stack: list[bytes] = []
    for index, row in enumerate(rows):
        leaf = hashlib.sha256(b"\x00" + _record(index, row)).digest()
        bind.execute(
            sa.text("UPDATE audit_events SET leaf_hash = :h WHERE seq = :s"),
            {"h": leaf.hex(), "s": index},
        )
        node, level, size = leaf, 0, index
        while size & 1:
            node, level, size = _node(stack.pop(), node), level + 1, size >> 1
            if level >= CACHE_LEVEL:
                bind.execute(
                    sa.text("INSERT INTO audit_subtrees VALUES (:l, :p, :h)"),
                    {"l": level, "p": ((index + 1) >> level) - 1, "h": node.hex()},
                )
        stack.append(node)
    with op.batch_alter_table("audit_events") as batch:
        batch.alter_column("leaf_hash", server_default=None)


def _merkle_to_chain() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("prev_hash", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("hash", sa.String(64), nullable=False, server_default=""))
        batch.drop_column("leaf_hash")
    _renumber(bind, +1)
    previous = "0" * 64
    for row in bind.execute(sa.text(f"SELECT {_COLUMNS} FROM audit_events ORDER BY seq")).all():
        link = hashlib.sha256(bytes.fromhex(previous) + _record(row.seq, row)).hexdigest()
        bind.execute(
            sa.text("UPDATE audit_events SET prev_hash = :p, hash = :h WHERE seq = :s"),
            {"p": previous, "h": link, "s": row.seq},
        )
        previous = link
    with op.batch_alter_table("audit_events") as batch:
        batch.alter_column("prev_hash", server_default=None)
        batch.alter_column("hash", server_default=None)


def _renumber(bind: sa.Connection, delta: int) -> None:
    """Shift every seq by `delta` in two steps, so no unique check sees a collision."""
    bind.execute(sa.text("UPDATE audit_events SET seq = -seq"))
    bind.execute(sa.text("UPDATE audit_events SET seq = :d - seq"), {"d": delta})
