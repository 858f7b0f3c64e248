"""Erasure (issue 12): deliveries.subscriber_id may be NULL, an erased subscriber's
digests kept as anonymous counts (newsletter/personal_data.py).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 19:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.alter_column("subscriber_id", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    # The old schema has no place for a row without its subscriber: the
    # anonymous counts of erased subscribers go.
    op.execute("DELETE FROM deliveries WHERE subscriber_id IS NULL")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.alter_column("subscriber_id", existing_type=sa.Integer(), nullable=False)
