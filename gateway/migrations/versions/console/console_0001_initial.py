"""Console audit trail: the first schema."""

import sqlalchemy as sa
from alembic import op

revision = "console_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_audit",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=True),
        sa.Column("subject_hash", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("remote", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_console_audit_at", "console_audit", ["at_ms"], unique=False)
    op.create_index("ix_console_audit_subject", "console_audit", ["subject_hash"], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION console_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'the console trail is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER console_audit_append_only BEFORE UPDATE OR DELETE ON console_audit "
            "FOR EACH ROW EXECUTE FUNCTION console_audit_append_only()"
        )
    else:
        op.execute(
            "CREATE TRIGGER console_audit_no_update BEFORE UPDATE ON console_audit "
            "BEGIN SELECT RAISE(ABORT, 'the console trail is append-only'); END"
        )
        op.execute(
            "CREATE TRIGGER console_audit_no_delete BEFORE DELETE ON console_audit "
            "BEGIN SELECT RAISE(ABORT, 'the console trail is append-only'); END"
        )


def downgrade() -> None:
    op.drop_index("ix_console_audit_subject", table_name="console_audit")
    op.drop_index("ix_console_audit_at", table_name="console_audit")
    op.drop_table("console_audit")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS console_audit_append_only()")
