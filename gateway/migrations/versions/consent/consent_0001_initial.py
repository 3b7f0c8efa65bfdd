"""Consent records: the first schema, with the triggers that keep records and their history append-only."""

import sqlalchemy as sa
from alembic import op

revision = "consent_0001"
down_revision = None
branch_labels = None
depends_on = None

#: (table, message): UPDATE, DELETE (and on PostgreSQL TRUNCATE) of these tables fail with the message.
APPEND_ONLY = (
    ("consent_records", "consent records are append-only"),
    ("consent_events", "consent history is append-only"),
)


def upgrade() -> None:
    op.create_table(
        "consent_meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "consent_records",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.String(length=36), nullable=False),
        sa.Column("schema_version", sa.String(length=32), nullable=False),
        sa.Column("subject_hash", sa.String(length=64), nullable=False),
        sa.Column("subject_hint", sa.String(length=64), nullable=False),
        sa.Column("controller", sa.Text(), nullable=False),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("purposes", sa.Text(), nullable=False),
        sa.Column("data_categories", sa.Text(), nullable=False),
        sa.Column("lawful_basis", sa.String(length=32), nullable=False),
        sa.Column("privacy_notice", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=64), nullable=False),
        sa.Column("valid_from", sa.String(length=32), nullable=False),
        sa.Column("valid_until", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("record_id", name="uq_consent_records_record_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_consent_records_subject", "consent_records", ["subject_hash", "seq"], unique=False)
    op.create_table(
        "consent_events",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("record_id", sa.String(length=36), nullable=False),
        sa.Column("time", sa.String(length=32), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.CheckConstraint("type IN ('given', 'withdrawn', 'expired')", name="ck_consent_events_type"),
        sa.ForeignKeyConstraint(["record_id"], ["consent_records.record_id"], name="fk_consent_events_record"),
        sa.PrimaryKeyConstraint("seq"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_consent_events_record", "consent_events", ["record_id", "seq"], unique=False)
    append_only()


def append_only() -> None:
    """Triggers that refuse to change or remove history, whoever connects (not only this code)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION consent_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'integrity_constraint_violation'; END $$"
        )
        for table, message in APPEND_ONLY:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION consent_append_only('{message}')"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION consent_append_only('{message}')"
            )
        return
    for table, message in APPEND_ONLY:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
            )


def downgrade() -> None:
    op.drop_index("ix_consent_events_record", table_name="consent_events")
    op.drop_table("consent_events")
    op.drop_index("ix_consent_records_subject", table_name="consent_records")
    op.drop_table("consent_records")
    op.drop_table("consent_meta")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION consent_append_only()")
