"""`newsletter digest preview`: a subscriber's digest as it would be (or was) sent.

Read-only: it makes no row and sends nothing. A row's fixed sections are shown
as they were sent; without a row, what dispatch would fix for them now.
"""

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db import utcnow
from newsletter.models import Delivery, Subscriber
from newsletter.tokens import subscriber_links
from worker.delivery.late import late_papers_due
from worker.digest.core import DayDigest, DigestEmail, Reader


def preview_digest(
    session: Session, config: Settings, subscriber: Subscriber, listing_date: date
) -> DigestEmail:
    """`subscriber`'s digest of `listing_date` as it would be (or was) sent; sends nothing."""
    delivery = session.scalar(
        select(Delivery).where(
            Delivery.subscriber_id == subscriber.id, Delivery.listing_date == listing_date
        )
    )
    first = delivery.first_listing_date if delivery is not None else None
    day = DayDigest.load(session, config, listing_date, first)
    reader = Reader.of(subscriber)
    if delivery is not None and delivery.sections is not None:
        sections = delivery.sections
    else:
        # No row yet: what dispatch would fix for them now, late papers included.
        readers = {subscriber.id: reader}
        sections = day.sections(readers, late_papers_due(session, day, readers))[subscriber.id]
    links = subscriber_links(config, subscriber.public_id, listing_date)
    now = utcnow().replace(second=0, microsecond=0)
    return day.render_email(reader, sections, now, links)
