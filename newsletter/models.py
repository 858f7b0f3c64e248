"""Typed SQLAlchemy 2 models: subscribers, keywords, papers, ingest records,
translations and deliveries. Models never commit or enqueue; the view or job
that owns the unit of work does.
"""

import enum
import secrets
from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from newsletter.db import UTCDateTime, utcnow

# Stable constraint names, so migrations can address them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _enum(cls: type[enum.Enum]) -> Enum:
    """Store an enum by its value (the word), as a portable VARCHAR + CHECK."""
    return Enum(
        cls,
        name=cls.__name__.lower(),
        native_enum=False,
        create_constraint=True,
        length=20,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


def new_public_id() -> str:
    """128 random bits naming a subscriber inside signed tokens (never the address)."""
    return secrets.token_hex(16)


class SubscriberStatus(enum.Enum):
    UNCONFIRMED = "unconfirmed"
    CONFIRMED = "confirmed"
    PAUSED = "paused"
    UNSUBSCRIBED = "unsubscribed"
    # Suppressed after repeated hard bounces; like unsubscribed, never mailed.
    BLOCKLISTED = "blocklisted"


# Subscriber.frequency's values; worker/delivery/weekly.py decides what each does.
DAILY, WEEKLY = "daily", "weekly"
FREQUENCIES = (DAILY, WEEKLY)


class Subscriber(Base):
    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    # As typed (domain lowercased by email-validator); uniqueness is on `email_key`.
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320), unique=True)
    status: Mapped[SubscriberStatus] = mapped_column(
        _enum(SubscriberStatus), default=SubscriberStatus.UNCONFIRMED
    )
    language: Mapped[str] = mapped_column(String(16), default="en")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    include_replacements: Mapped[bool] = mapped_column(Boolean, default=False)
    # A one-line TL;DR under each paper's title (worker/translation/tldr.py).
    tldr: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Local hour (0-23) before which the digest is held; None = as soon as ready.
    delivery_hour: Mapped[int | None] = mapped_column(Integer, default=None)
    # "daily" (every listing date) or "weekly": one digest on `weekday` (0 =
    # Monday, local time) covering the listing dates since the last one
    # (worker/delivery/weekly.py).
    frequency: Mapped[str] = mapped_column(String(10), default="daily", server_default="daily")
    weekday: Mapped[int | None] = mapped_column(Integer, default=None)
    # When `frequency` last changed: the first daily row after weekly days
    # brings the dates they left without a digest.
    frequency_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    bounce_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    confirmation_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    keywords: Mapped[list["Keyword"]] = relationship(
        back_populates="subscriber",
        order_by="Keyword.position",
        cascade="all, delete-orphan",
    )

    @property
    def keyword_lines(self) -> list[str]:
        return [k.text for k in self.keywords]

    def choose_frequency(self, frequency: str, weekday: int | None) -> None:
        """Daily or weekly (on `weekday`); a change is dated for the first daily after weekly."""
        if self.frequency is not None and frequency != self.frequency:
            self.frequency_changed_at = utcnow()
        self.frequency = frequency
        self.weekday = weekday


class Keyword(Base):
    __tablename__ = "keywords"
    __table_args__ = (UniqueConstraint("subscriber_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(String(100))

    subscriber: Mapped[Subscriber] = relationship(back_populates="keywords")


class AnnounceType(enum.Enum):
    NEW = "new"
    CROSS = "cross"
    REPLACE = "replace"
    REPLACE_CROSS = "replace-cross"


class Paper(Base):
    """The latest announced version of an arXiv paper."""

    __tablename__ = "papers"

    id: Mapped[int] = mapped_column(primary_key=True)
    arxiv_id: Mapped[str] = mapped_column(String(32), unique=True)
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text)
    authors: Mapped[list[str]] = mapped_column(JSON)
    # Primary category first.
    categories: Mapped[list[str]] = mapped_column(JSON)
    abstract: Mapped[str] = mapped_column(Text)
    comments: Mapped[str | None] = mapped_column(Text)
    doi: Mapped[str | None] = mapped_column(Text)
    journal_ref: Mapped[str | None] = mapped_column(Text)
    # The listing date of the announcement this row holds, and its type.
    listing_date: Mapped[date] = mapped_column(Date, index=True)
    announce_type: Mapped[AnnounceType] = mapped_column(_enum(AnnounceType))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class FeedFetch(Base):
    """One archive group's feed as fetched for one listing date."""

    __tablename__ = "feed_fetches"
    __table_args__ = (UniqueConstraint("listing_date", "archive_group"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    listing_date: Mapped[date] = mapped_column(Date, index=True)
    # e.g. "cs" or "math+math-ph+nlin"; "file" or "oai" for offline and backfill sources.
    archive_group: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(16))  # rss | file | oai
    feed_date: Mapped[date | None] = mapped_column(Date)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    count_new: Mapped[int] = mapped_column(Integer, default=0)
    count_cross: Mapped[int] = mapped_column(Integer, default=0)
    count_replace: Mapped[int] = mapped_column(Integer, default=0)
    count_replace_cross: Mapped[int] = mapped_column(Integer, default=0)
    warning: Mapped[str | None] = mapped_column(Text)


class ListingDay(Base):
    """A listing date and whether all of it is ingested (and translated)."""

    __tablename__ = "listing_days"

    listing_date: Mapped[date] = mapped_column(Date, primary_key=True)
    # Set once every archive group is fresh for this date; digests wait for it.
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set when the translation job for this date finished (or gave up).
    translated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TranslationStatus(enum.Enum):
    DONE = "done"
    FAILED = "failed"


class Translation(Base):
    """A paper version's title and abstract in one target language, made once."""

    __tablename__ = "translations"
    __table_args__ = (UniqueConstraint("arxiv_id", "version", "language"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    arxiv_id: Mapped[str] = mapped_column(String(32), index=True)
    version: Mapped[int] = mapped_column(Integer)
    language: Mapped[str] = mapped_column(String(16))
    status: Mapped[TranslationStatus] = mapped_column(_enum(TranslationStatus))
    title: Mapped[str | None] = mapped_column(Text)
    abstract: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(200))
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Tldr(Base):
    """A paper version's one-line TL;DR in one language ("en", or the translation's), made once."""

    __tablename__ = "tldrs"
    __table_args__ = (UniqueConstraint("arxiv_id", "version", "language"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    arxiv_id: Mapped[str] = mapped_column(String(32), index=True)
    version: Mapped[int] = mapped_column(Integer)
    language: Mapped[str] = mapped_column(String(16))
    status: Mapped[TranslationStatus] = mapped_column(_enum(TranslationStatus))
    text: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(200))
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeliveryStatus(enum.Enum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


class Delivery(Base):
    """One subscriber's digest for one listing date: the exactly-once ledger.

    worker/delivery/ledger.py owns the state changes: queued -> sending (a claim with a
    lease) -> sent | failed | skipped, or back to queued (deferred, released).
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "listing_date"),
        # A digest covering several dates (weekly) starts where the last one
        # ended: two dispatches that read the same last row make one row.
        UniqueConstraint("subscriber_id", "first_listing_date"),
        # A claim reads a day's queued (or lapsed sending) rows in id order.
        Index("ix_deliveries_listing_date_status_id", "listing_date", "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # None once the subscriber erased themselves (newsletter/personal_data.py):
    # the row stays as an anonymous count of that day's digests.
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    listing_date: Mapped[date] = mapped_column(Date, index=True)
    # A digest of several listing dates (weekly, or the first daily after
    # weekly) covers first_listing_date..listing_date; None: listing_date alone.
    first_listing_date: Mapped[date | None] = mapped_column(Date, default=None)
    status: Mapped[DeliveryStatus] = mapped_column(
        _enum(DeliveryStatus), default=DeliveryStatus.QUEUED, index=True
    )
    # Fixed when the row is made, so a resend after a crash reuses it.
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    paper_count: Mapped[int] = mapped_column(Integer, default=0)
    # The digest's content fixed at dispatch: [[keyword, [arxiv_id, ...]], ...]
    # in the subscriber's keyword order, so a resend after a crash is identical.
    sections: Mapped[list | None] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The worker holding a `sending` row, since when, and until when: its
    # heartbeat extends the lease; once it lapses any worker may take the row.
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A deferred (4xx) row is not claimed again before this instant.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A sent digest a relay bounced later (worker/bounces/effects.py): counted once.
    bounced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    subscriber: Mapped[Subscriber | None] = relationship()
