"""Indexes for retention: events by age, deliveries by event.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_events_received_at", "events", ["received_at"])
    op.create_index("ix_deliveries_event_id", "deliveries", ["event_id"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_event_id", table_name="deliveries")
    op.drop_index("ix_events_received_at", table_name="events")
