"""`GET /admin/`: the operator's status page, the last listing dates as plots.

Registered by `create_app`. Off (404) unless ADMIN_PASSWORD is set; then HTTP
basic auth with any user name and that password (compared in constant time),
over https only (a request from this machine, or a dev or testing app, may use
plain http). Wrong passwords are counted per client address with
newsletter/ratelimit.py: past ADMIN_FAILURES_PER_HOUR an hour the address is
refused (429) before its password is even compared.

Like /healthz and /metrics it reads the models directly and never imports
arXiv or sending code (ARCHITECTURE.md's layers). One query per plot, each
over the LISTING_DATES dates' indexed rows; the subscribers plot scans the
subscribers table once. The warnings are those `newsletter status` prints:
the settings' (config_warnings), a listing date left incomplete, a feed
fetch's stored warning.
"""

import hmac
import ipaddress
from collections import Counter
from datetime import date, datetime

from flask import Blueprint, Response, abort, current_app, render_template, request
from flask_babel import gettext as _
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from newsletter import db
from newsletter.charts import Series, bar_chart
from newsletter.config import config_warnings, settings
from newsletter.db import utcnow
from newsletter.models import (
    AnnounceType,
    Delivery,
    DeliveryStatus,
    FeedFetch,
    ListingDay,
    Paper,
    Subscriber,
)
from newsletter.ratelimit import NAMESPACE, Attempts, app_limiter, attempt
from worker import calendar

bp = Blueprint("admin", __name__, url_prefix="/admin")

# Listing dates the plots cover: six weeks of announcements.
LISTING_DATES = 30
# Wrong passwords an hour from one address before it is refused: enough for
# typing mistakes, far too few to guess a password.
ADMIN_FAILURES_PER_HOUR = 10
REALM = 'Basic realm="newsletter admin", charset="UTF-8"'


@bp.before_request
def require_operator():
    """Refuse anyone but the operator: 404 when off, 403 over plain http, 429, 401."""
    password = settings().ADMIN_PASSWORD
    if not password:
        abort(404)
    if not request.is_secure and not _local_or_dev():
        abort(403, description=_("The status page is served over https only."))
    key = f"admin:{request.remote_addr}"
    item = Attempts(ADMIN_FAILURES_PER_HOUR, namespace=NAMESPACE)
    if not app_limiter().test(item, key):
        _refuse_too_many(attempt(key, ADMIN_FAILURES_PER_HOUR) or 1)
    sent = request.authorization
    if sent is not None and sent.type == "basic":
        if hmac.compare_digest((sent.password or "").encode(), password.encode()):
            return None
        wait = attempt(key, ADMIN_FAILURES_PER_HOUR)
        if wait:
            _refuse_too_many(wait)
    return Response(
        "The status page needs the operator's password.\n",
        401,
        {"WWW-Authenticate": REALM},
        mimetype="text/plain",
    )


def _local_or_dev() -> bool:
    """Whether plain http is allowed: a dev or testing app, or a client on this machine."""
    if settings().DEV or current_app.testing:
        return True
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False


def _refuse_too_many(wait: int) -> None:
    abort(
        429,
        description=_("Too many wrong passwords. Please wait and try again."),
        retry_after=wait,
    )


@bp.get("/")
def status_page():
    """The plots of the last listing dates and the current warnings."""
    session = db.session()
    now = utcnow()
    dates = recent_listing_dates(calendar.due_listing_date(now), LISTING_DATES)
    days = [day.isoformat() for day in dates]
    charts = [
        (_("Papers per listing date, by announce type"), paper_series(session, dates), ""),
        (_("Digests per listing date"), delivery_series(session, dates), ""),
        (
            _("Hours from announcement to the last digest sent"),
            send_delay_series(session, dates),
            "h",
        ),
        (
            _("Subscribers at each announcement, by status"),
            subscriber_series(session, dates),
            "",
        ),
        (_("Digests bounced per listing date"), bounce_series(session, dates), ""),
    ]
    plots = [(title, bar_chart(title, days, series, unit)) for title, series, unit in charts]
    bounce_limit = settings().BOUNCE_LIMIT
    bouncing = bounce_counts(session, bounce_limit)
    return render_template(
        "admin.html",
        plots=plots,
        warnings=status_warnings(session, dates),
        first=dates[0],
        last=dates[-1],
        bouncing=bouncing,
        bounce_limit=bounce_limit,
    )


def recent_listing_dates(last: date, count: int) -> list[date]:
    """The `count` listing dates of arXiv's calendar ending at `last`, oldest first."""
    dates = [last]
    while len(dates) < count:
        dates.append(calendar.previous_listing_date(dates[-1]))
    return dates[::-1]


def _counts_by_date(session: Session, dates: list[date], kind, column) -> dict[date, Counter]:
    """Rows per (listing date, `kind`) of `column`'s table within `dates`."""
    result: dict[date, Counter] = {day: Counter() for day in dates}
    rows = session.execute(
        select(column, kind, func.count()).where(column.in_(dates)).group_by(column, kind)
    )
    for listing_date, value, count in rows:
        result[listing_date][value] = count
    return result


def paper_series(session: Session, dates: list[date]) -> list[Series]:
    """Papers stored per listing date, one series per announce type."""
    counts = _counts_by_date(session, dates, Paper.announce_type, Paper.listing_date)
    return [Series(kind.value, [counts[day][kind] for day in dates]) for kind in AnnounceType]


def delivery_series(session: Session, dates: list[date]) -> list[Series]:
    """Digests sent, failed and skipped per listing date."""
    counts = _counts_by_date(session, dates, Delivery.status, Delivery.listing_date)
    shown = (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED)
    return [Series(status.value, [counts[day][status] for day in dates]) for status in shown]


def send_delay_series(session: Session, dates: list[date]) -> list[Series]:
    """Hours from each date's announcement to its last digest sent (None: none sent)."""
    last_sent: dict[date, datetime | None] = {
        day: sent
        for day, sent in session.execute(
            select(Delivery.listing_date, func.max(Delivery.sent_at))
            .where(Delivery.listing_date.in_(dates), Delivery.sent_at.is_not(None))
            .group_by(Delivery.listing_date)
        )
    }
    hours: list[float | None] = []
    for day in dates:
        sent = last_sent.get(day)
        if sent is None:
            hours.append(None)
        else:
            delay = sent - calendar.announcement_instant(day)
            hours.append(max(0.0, delay.total_seconds() / 3600))
    return [Series("hours", hours)]


def subscriber_series(session: Session, dates: list[date]) -> list[Series]:
    """Subscribers at each date's announcement: confirmed, unconfirmed, unsubscribed.

    An approximation from the three timestamps a subscriber row keeps: signed
    up (created_at), confirmed (confirmed_at), left (unsubscribed_at). Pauses
    and blocklisting keep no date, so a paused reader counts as confirmed; a
    reader who left and came back counts by the latest of each timestamp.
    One scan: each row's three timestamps become the index of the first
    announcement at or after them (len(dates): later, or never), counted per
    triple; the counts at each announcement are summed from those.
    """
    instants = [calendar.announcement_instant(day) for day in dates]

    def first_at_or_after(column):
        branches = [(column <= at, n) for n, at in enumerate(instants)]
        return case(*branches, else_=len(instants))

    buckets = (
        first_at_or_after(Subscriber.created_at),
        first_at_or_after(Subscriber.confirmed_at),
        first_at_or_after(Subscriber.unsubscribed_at),
    )
    rows = session.execute(select(*buckets, func.count()).group_by(*buckets)).all()
    return statuses_over_time(len(dates), [(c, f, u, count) for c, f, u, count in rows])


def statuses_over_time(days: int, cells: list[tuple[int, int, int, int]]) -> list[Series]:
    """Confirmed, unconfirmed and unsubscribed per day from counts of
    (signed up, confirmed, left) first-day indexes (`days`: not by the last day)."""
    confirmed, unconfirmed, left = [0] * days, [0] * days, [0] * days
    for day in range(days):
        for signed_up_on, confirmed_on, left_on, count in cells:
            if left_on <= day:
                left[day] += count
            elif confirmed_on <= day:
                confirmed[day] += count
            elif signed_up_on <= day:
                unconfirmed[day] += count
    return [
        Series("confirmed", confirmed),
        Series("unconfirmed", unconfirmed),
        Series("unsubscribed", left),
    ]


def bounce_series(session: Session, dates: list[date]) -> list[Series]:
    """Digests of each listing date that bounced (reported late, after being sent)."""
    counts = dict(
        session.execute(
            select(Delivery.listing_date, func.count())
            .where(Delivery.listing_date.in_(dates), Delivery.bounced_at.is_not(None))
            .group_by(Delivery.listing_date)
        ).all()
    )
    return [Series("bounced", [counts.get(day, 0) for day in dates])]


def bounce_counts(session: Session, limit: int) -> tuple[int, int]:
    """Subscribers with at least one bounce counted, and those at BOUNCE_LIMIT or over."""
    bounced, at_limit = session.execute(
        select(
            func.sum(case((Subscriber.bounce_count > 0, 1), else_=0)),
            func.sum(case((Subscriber.bounce_count >= limit, 1), else_=0)),
        )
    ).one()
    return int(bounced or 0), int(at_limit or 0)


def status_warnings(session: Session, dates: list[date]) -> list[str]:
    """What `newsletter status` warns of: the settings, incomplete dates, feed fetches."""
    warnings = list(config_warnings(settings()))
    incomplete = session.scalars(
        select(ListingDay.listing_date)
        .where(ListingDay.listing_date.in_(dates), ListingDay.completed_at.is_(None))
        .order_by(ListingDay.listing_date.desc())
    )
    warnings += [f"{day}: listing date INCOMPLETE" for day in incomplete]
    fetches = session.execute(
        select(FeedFetch.listing_date, FeedFetch.archive_group, FeedFetch.warning)
        .where(FeedFetch.listing_date.in_(dates), FeedFetch.warning.is_not(None))
        .order_by(FeedFetch.listing_date.desc(), FeedFetch.archive_group)
    )
    warnings += [f"{day} {group}: {warning}" for day, group, warning in fetches]
    return warnings
