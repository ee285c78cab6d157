"""Attempts (the most recent of each configuration, successes too, with detail) and the
hourly activity rollup.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None
# Buckets of the latency histogram (tables.LATENCY_BOUNDS_MS and one for what is slower), fixed
# here: a migration does not follow later changes of the code.
LATENCY_BUCKETS = 11


def upgrade() -> None:
    op.create_table(
        "attempts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("configuration_id", sa.String(length=24), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("will_retry", sa.Boolean(), nullable=False),
        sa.Column("next_at", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("hint", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["configuration_id"],
            ["configurations.id"],
            name=op.f("fk_attempts_configuration_id_configurations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attempts")),
    )
    op.create_index(
        "ix_attempts_configuration_id_id", "attempts", ["configuration_id", "id"], unique=False
    )

    op.create_table(
        "activity_hours",
        sa.Column("configuration_id", sa.String(length=24), nullable=False),
        sa.Column("hour", sa.BigInteger(), nullable=False),
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        sa.Column("successes", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        *(sa.Column(f"lat_{i}", sa.BigInteger(), nullable=False) for i in range(LATENCY_BUCKETS)),
        sa.ForeignKeyConstraint(
            ["configuration_id"],
            ["configurations.id"],
            name=op.f("fk_activity_hours_configuration_id_configurations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "configuration_id", "hour", "shard", name=op.f("pk_activity_hours")
        ),
    )


def downgrade() -> None:
    op.drop_table("activity_hours")
    op.drop_index("ix_attempts_configuration_id_id", table_name="attempts")
    op.drop_table("attempts")
