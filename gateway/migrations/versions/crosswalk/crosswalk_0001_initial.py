"""Matching crosswalks: the first schema."""

import sqlalchemy as sa
from alembic import op

revision = "crosswalk_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "crosswalk_clusters",
        sa.Column("run_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("record_id", sa.Text(), nullable=False),
        sa.Column("cluster_id", sa.Integer(), nullable=False),
        sa.Column("cluster_size", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "source", "record_id"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_crosswalk_clusters_cluster", "crosswalk_clusters", ["run_id", "cluster_id"], unique=False)
    op.create_table(
        "crosswalk_pairs",
        sa.Column("run_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("pair_no", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("left_source", sa.Text(), nullable=False),
        sa.Column("left_id", sa.Text(), nullable=False),
        sa.Column("right_source", sa.Text(), nullable=False),
        sa.Column("right_id", sa.Text(), nullable=False),
        sa.Column("match_probability", sa.Double(), nullable=False),
        sa.Column("match_weight", sa.Double(), nullable=False),
        sa.Column("weights", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "pair_no"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "crosswalk_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("threshold", sa.Double(), nullable=False),
        sa.Column("cluster_threshold", sa.Double(), nullable=False),
        sa.Column("pair_count", sa.Integer(), nullable=False),
        sa.Column("record_count", sa.Integer(), nullable=False),
        sa.Column("comparisons", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("crosswalk_runs")
    op.drop_table("crosswalk_pairs")
    op.drop_index("ix_crosswalk_clusters_cluster", table_name="crosswalk_clusters")
    op.drop_table("crosswalk_clusters")
