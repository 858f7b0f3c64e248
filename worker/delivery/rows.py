"""The ledger's new rows, as `make_deliveries` (worker/delivery/dispatch.py) writes a page of them.

Each row's content is fixed when it is made: its sections, paper count and
Message-ID, queued or skipped for want of papers. A page's rows go in with one
INSERT ... ON CONFLICT DO NOTHING executed many times, so a concurrent
dispatch's rows are left alone and only the rows made here are counted.
"""

from datetime import date
from typing import Any, cast

from sqlalchemy import CursorResult, Executable, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from newsletter.config import Settings
from newsletter.db import utcnow
from newsletter.models import Delivery, DeliveryStatus
from worker.delivery.messages import new_message_id
from worker.digest.core import Sections


def unique_paper_count(sections: Sections) -> int:
    return len({arxiv_id for _keyword, ids in sections for arxiv_id in ids})


def insert_statement(session: Session) -> Executable:
    """INSERT ... ON CONFLICT DO NOTHING: one statement, executed once per row of a page."""
    dialect = session.get_bind().dialect.name
    table = cast(Table, Delivery.__table__)  # the models type it as a FromClause
    statement: postgresql.Insert | sqlite.Insert
    if dialect == "postgresql":
        statement = postgresql.insert(table).on_conflict_do_nothing()
    elif dialect == "sqlite":
        statement = sqlite.insert(table).on_conflict_do_nothing()
    else:
        raise NotImplementedError(f"deliveries need INSERT ... ON CONFLICT; {dialect} has none")
    # Without RETURNING the rows made are counted from the driver's rowcount,
    # which psycopg sums over an executemany.
    return statement.execution_options(preserve_rowcount=True)


def rows_made(session: Session, insert: Executable, rows: list[dict[str, Any]]) -> int:
    # An INSERT's result is a CursorResult, the one with a rowcount.
    return cast(CursorResult[Any], session.execute(insert, rows)).rowcount


def new_rows(
    config: Settings,
    listing_date: date,
    sections: dict[int, Sections],
    first_listing_date: date | None = None,
) -> tuple[list[dict], list[dict]]:
    """The page's new rows: (to send, skipped for want of papers).

    `first_listing_date`: the rows cover the listing dates from it (weekly).
    """
    created = utcnow()
    queued: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for subscriber_id, own in sections.items():
        count = unique_paper_count(own)
        send = bool(count) or config.DIGEST_SEND_EMPTY
        (queued if send else skipped).append(
            {
                "subscriber_id": subscriber_id,
                "listing_date": listing_date,
                "first_listing_date": first_listing_date,
                "status": DeliveryStatus.QUEUED if send else DeliveryStatus.SKIPPED,
                "message_id": new_message_id(config.MAIL_FROM),
                "sections": [[keyword, ids] for keyword, ids in own],
                "paper_count": count,
                "attempts": 0,
                "created_at": created,
                "error": None if send else "no matching papers",
            }
        )
    return queued, skipped
