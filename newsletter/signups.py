"""The sign-up job: store a new address and ask it to confirm, or mail a known
one its manage link.

The sign-up view (newsletter/subscriptions.py) validates the form and queues
`register_sign_up` for every sign-up, known address or not, then answers the
same page. The request does the same work on both paths, so its timing does
not tell whether an address is subscribed; the writing happens here, in the
worker (or in-process right away when no Redis is configured).
"""

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from newsletter import db
from newsletter.models import Keyword, Subscriber, SubscriberStatus
from worker import jobs


def register_sign_up(email: str, settings: dict) -> None:
    """Store `email` with the form's `settings` and send the confirmation, or, for a
    known address, send what a repeated sign-up gets. A rerun sends the mail again."""
    session = db.session()
    key = email.casefold()
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email_key == key))
    if subscriber is None:
        subscriber = Subscriber(
            email=email,
            email_key=key,
            language=settings["language"],
            timezone=settings["timezone"],
            include_replacements=settings["include_replacements"],
            # A sign-up queued before TL;DRs existed has no "tldr".
            tldr=settings.get("tldr", False),
            delivery_hour=settings["delivery_hour"],
            # A sign-up queued before weekly digests existed is daily.
            frequency=settings.get("frequency", "daily"),
            weekday=settings.get("weekday"),
        )
        subscriber.keywords.extend(
            Keyword(position=i, text=text) for i, text in enumerate(settings["keywords"])
        )
        session.add(subscriber)
        try:
            session.commit()
        except IntegrityError:
            # The same address signed up at the same moment: treat it as known.
            session.rollback()
            subscriber = session.execute(
                select(Subscriber).where(Subscriber.email_key == key)
            ).scalar_one()
    if subscriber.status is SubscriberStatus.UNCONFIRMED:
        jobs.send_confirmation(subscriber.id)
    elif subscriber.status is not SubscriberStatus.BLOCKLISTED:
        jobs.send_manage_link(subscriber.id)
