"""Delivery leases: lease_expires_at, next_attempt_at, and the claim index.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 13:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_deliveries_listing_date_status_id", ["listing_date", "status", "id"], unique=False
        )
    # Rows claimed under the old scheme are taken again at once: the deploy
    # that runs this migration stopped the workers that held them.
    op.execute(
        "UPDATE deliveries SET lease_expires_at = claimed_at "
        "WHERE status = 'sending' AND claimed_at IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_deliveries_listing_date_status_id")
        batch_op.drop_column("next_attempt_at")
        batch_op.drop_column("lease_expires_at")
