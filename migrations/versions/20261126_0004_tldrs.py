"""TL;DRs (issue 12 item 6): subscribers.tldr, and one tldrs row per paper version and language.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 18:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        # Existing subscribers have not ticked it: their digests stay as they are.
        batch_op.add_column(
            sa.Column("tldr", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "tldrs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("arxiv_id", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "done",
                "failed",
                name="translationstatus",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tldrs")),
        sa.UniqueConstraint(
            "arxiv_id", "version", "language", name=op.f("uq_tldrs_arxiv_id_version_language")
        ),
    )
    with op.batch_alter_table("tldrs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tldrs_arxiv_id"), ["arxiv_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tldrs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tldrs_arxiv_id"))
    op.drop_table("tldrs")
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_column("tldr")
