"""Exchange log: the first schema."""

import sqlalchemy as sa
from alembic import op

revision = "log_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "log_archive",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("first_index", sa.BigInteger(), nullable=False),
        sa.Column("end_index", sa.BigInteger(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("bundle_name", sa.Text(), nullable=False),
        sa.Column("bundle_digest", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "log_body",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("idx", "kind"),
    )
    op.create_table(
        "log_meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "log_node",
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "log_record",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("idx"),
    )
    op.create_table(
        "log_sth",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.String(length=64), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("jws", sa.Text(), nullable=False),
        sa.Column("tsa_token", sa.LargeBinary(), nullable=True),
        sa.Column("tsa_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "log_subject",
        sa.Column("subject_hash", sa.String(length=64), nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("subject_hash", "idx"),
        sqlite_with_rowid=False,
    )

    dialect = op.get_bind().dialect.name
    for name in ("subject_hash", "client", "service", "purpose", "decision", "request_in_ts"):
        if dialect == "postgresql":
            expr = f"(content::jsonb ->> '{name}')"
            expr = f"({expr}::bigint)" if name == "request_in_ts" else expr
        else:
            expr = f"json_extract(content, '$.{name}')"
        op.execute(f"CREATE INDEX ix_log_record_{name} ON log_record ({expr})")
    meta = sa.table("log_meta", sa.column("key", sa.String), sa.column("value", sa.BigInteger))
    op.bulk_insert(meta, [{"key": "size", "value": 0}, {"key": "archived_before", "value": 0}])


def downgrade() -> None:
    op.drop_table("log_subject")
    op.drop_table("log_sth")
    op.drop_table("log_record")
    op.drop_table("log_node")
    op.drop_table("log_meta")
    op.drop_table("log_body")
    op.drop_table("log_archive")
