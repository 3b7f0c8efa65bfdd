"""Operational monitoring: the first schema."""

import sqlalchemy as sa
from alembic import op

revision = "monitoring_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitoring_record",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("security_server_type", sa.Text(), nullable=False),
        sa.Column("protocol", sa.Text(), nullable=False),
        sa.Column("request_in_ts", sa.BigInteger(), nullable=False),
        sa.Column("request_out_ts", sa.BigInteger(), nullable=True),
        sa.Column("response_in_ts", sa.BigInteger(), nullable=True),
        sa.Column("response_out_ts", sa.BigInteger(), nullable=True),
        sa.Column("client_id", sa.Text(), nullable=True),
        sa.Column("service_id", sa.Text(), nullable=True),
        sa.Column("message_user_id", sa.Text(), nullable=True),
        sa.Column("message_issue", sa.Text(), nullable=True),
        sa.Column("message_protocol_version", sa.Text(), nullable=True),
        sa.Column("purpose", sa.Text(), nullable=True),
        sa.Column("rest_method", sa.Text(), nullable=True),
        sa.Column("rest_path", sa.Text(), nullable=True),
        sa.Column("request_size", sa.BigInteger(), nullable=True),
        sa.Column("response_size", sa.BigInteger(), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("fault_code", sa.Text(), nullable=True),
        sa.Column("fault_string", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_monitoring_record_time", "monitoring_record", ["request_in_ts"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_monitoring_record_time", table_name="monitoring_record")
    op.drop_table("monitoring_record")
