"""Matching review queue: the first schema, with the triggers that keep decisions append-only."""

import sqlalchemy as sa
from alembic import op

revision = "review_0001"
down_revision = None
branch_labels = None
depends_on = None

TABLE, MESSAGE = "review_decision", "decisions are append-only"


def upgrade() -> None:
    op.create_table(
        "review_pair",
        sa.Column("pair_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("left_source", sa.Text(), nullable=False),
        sa.Column("left_id", sa.Text(), nullable=False),
        sa.Column("right_source", sa.Text(), nullable=False),
        sa.Column("right_id", sa.Text(), nullable=False),
        sa.Column("match_probability", sa.Double(), nullable=False),
        sa.Column("match_weight", sa.Double(), nullable=True),
        sa.Column("enqueued_at", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("pair_id"),
        sa.UniqueConstraint("left_source", "left_id", "right_source", "right_id", name="uq_review_pair_records"),
    )
    op.create_table(
        "review_decision",
        sa.Column("decision_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pair_id", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("reviewer", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.Column("decided_at", sa.String(length=32), nullable=False),
        sa.CheckConstraint("decision IN ('match', 'non-match', 'unsure')", name="ck_review_decision_decision"),
        sa.CheckConstraint("length(reviewer) > 0", name="ck_review_decision_reviewer"),
        sa.ForeignKeyConstraint(["pair_id"], ["review_pair.pair_id"], name="fk_review_decision_pair"),
        sa.PrimaryKeyConstraint("decision_id"),
    )
    op.create_index("ix_review_decision_pair", "review_decision", ["pair_id", "decision_id"], unique=False)
    append_only()


def append_only() -> None:
    """Triggers that refuse to change or remove a decision, whoever connects (not only this code)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION review_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'integrity_constraint_violation'; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE ON {TABLE} "
            f"FOR EACH ROW EXECUTE FUNCTION review_append_only('{MESSAGE}')"
        )
        op.execute(
            f"CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION review_append_only('{MESSAGE}')"
        )
        return
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER {TABLE}_no_{action.lower()} BEFORE {action} ON {TABLE} "
            f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
        )


def downgrade() -> None:
    op.drop_index("ix_review_decision_pair", table_name="review_decision")
    op.drop_table("review_decision")
    op.drop_table("review_pair")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION review_append_only()")
