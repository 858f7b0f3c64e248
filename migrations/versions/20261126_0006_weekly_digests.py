"""Weekly digests (issue 12 item 2): subscribers.frequency, weekday and
frequency_changed_at, deliveries.first_listing_date.

A delivery row covering several listing dates (a weekly digest, or the first
daily one after weekly) stores the first date it covers; the unique
(subscriber_id, first_listing_date) makes two dispatches that read the same
last row make one row (worker/delivery/weekly.py). Existing subscribers stay daily.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 18:50:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("frequency", sa.String(length=10), server_default="daily", nullable=False)
        )
        batch_op.add_column(sa.Column("weekday", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("frequency_changed_at", sa.DateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("first_listing_date", sa.Date(), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_deliveries_subscriber_id_first_listing_date"),
            ["subscriber_id", "first_listing_date"],
        )


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_deliveries_subscriber_id_first_listing_date"), type_="unique"
        )
        batch_op.drop_column("first_listing_date")
    with op.batch_alter_table("subscribers", schema=None) as batch_op:
        batch_op.drop_column("frequency_changed_at")
        batch_op.drop_column("weekday")
        batch_op.drop_column("frequency")
