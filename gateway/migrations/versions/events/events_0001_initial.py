"""Vital-event subscriptions, events and deliveries: the first schema."""

import sqlalchemy as sa
from alembic import op

revision = "events_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events_cursors",
        sa.Column("event_type", sa.String(length=16), nullable=False),
        sa.Column("since", sa.String(length=10), nullable=False),
        sa.Column("polled_at", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("event_type"),
    )
    op.create_table(
        "events_deliveries",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("subscription_code", sa.String(length=36), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("last_attempt_at", sa.String(length=32), nullable=True),
        sa.Column("last_error", sa.String(length=128), nullable=True),
        sa.Column("delivered_at", sa.String(length=32), nullable=True),
        sa.Column("exchange_id", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subscription_code", "event_id", name="uq_events_deliveries_subscription_event"),
    )
    op.create_index("ix_events_deliveries_due", "events_deliveries", ["state", "next_attempt_at"], unique=False)
    op.create_index("ix_events_deliveries_event", "events_deliveries", ["event_id", "state"], unique=False)
    op.create_index(
        "ix_events_deliveries_subscription", "events_deliveries", ["subscription_code", "state"], unique=False
    )
    op.create_table(
        "events_events",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=16), nullable=False),
        sa.Column("registered_on", sa.String(length=10), nullable=False),
        sa.Column("record", sa.Text(), nullable=True),
        sa.Column("seen_at", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_table(
        "events_meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "events_subscriptions",
        sa.Column("code", sa.String(length=36), nullable=False),
        sa.Column("subscriber", sa.String(length=255), nullable=False),
        sa.Column("event_type", sa.String(length=16), nullable=False),
        sa.Column("districts", sa.Text(), nullable=False),
        sa.Column("callback_service", sa.String(length=1024), nullable=False),
        sa.Column("callback_path", sa.String(length=1024), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("created_on", sa.String(length=10), nullable=False),
        sa.Column("cancelled_at", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_index(
        "ix_events_subscriptions_subscriber", "events_subscriptions", ["subscriber", "created_at"], unique=False
    )
    op.create_index("ix_events_subscriptions_type", "events_subscriptions", ["event_type", "status"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_events_subscriptions_type", table_name="events_subscriptions")
    op.drop_index("ix_events_subscriptions_subscriber", table_name="events_subscriptions")
    op.drop_table("events_subscriptions")
    op.drop_table("events_meta")
    op.drop_table("events_events")
    op.drop_index("ix_events_deliveries_subscription", table_name="events_deliveries")
    op.drop_index("ix_events_deliveries_event", table_name="events_deliveries")
    op.drop_index("ix_events_deliveries_due", table_name="events_deliveries")
    op.drop_table("events_deliveries")
    op.drop_table("events_cursors")
