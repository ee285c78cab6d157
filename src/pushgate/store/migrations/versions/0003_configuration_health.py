"""Configuration health (the circuit breaker) and the per-configuration due index.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "configuration_health",
        sa.Column("configuration_id", sa.String(24), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("opened", sa.Integer(), nullable=False),
        sa.Column("paused_until", sa.BigInteger(), nullable=True),
        sa.Column("off", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("since", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["configuration_id"],
            ["configurations.id"],
            name="fk_configuration_health_configuration_id_configurations",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("configuration_id", name="pk_configuration_health"),
    )
    op.create_index(
        "ix_deliveries_configuration_due",
        "deliveries",
        ["configuration_id", "available_at"],
        sqlite_where=sa.text("state = 'pending'"),
        postgresql_where=sa.text("state = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_configuration_due", table_name="deliveries")
    op.drop_table("configuration_health")
