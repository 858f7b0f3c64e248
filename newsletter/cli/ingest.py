"""`newsletter ingest`: the due listing date, a saved document, or a backfill.

The work is in worker/arxiv/ingest.py and worker/arxiv/backfill.py.
"""

import click
from flask.cli import with_appcontext

from newsletter.cli.dates import date_option, parse_date_option
from newsletter.cli.progress import progress_report
from worker import calendar


@click.command("ingest")
@click.option("--file", "path", metavar="PATH", help="A saved RSS, Atom or OAI-PMH document.")
@date_option("The listing date (with --file), or backfill it from OAI-PMH.")
@click.option(
    "--since",
    "since_text",
    metavar="D",
    help="Backfill every listing date from D to the due one (OAI-PMH).",
)
@with_appcontext
def ingest_command(path: str | None, date_text: str | None, since_text: str | None) -> None:
    """Ingest arXiv announcements: the due listing date, a saved file, or a backfill."""
    from newsletter.config import settings
    from newsletter.db import utcnow
    from worker.arxiv import backfill, ingest
    from worker.arxiv import store as ingest_store
    from worker.arxiv.items import ArxivError

    day = parse_date_option("--date", date_text)
    since = parse_date_option("--since", since_text)
    if since is not None and (day is not None or path is not None):
        raise click.ClickException("--since cannot be combined with --date or --file")
    config = settings()
    try:
        if path is not None:
            summaries = ingest.ingest_file(config, path, day)
        elif day is not None:
            summaries = backfill.ingest_oai(config, day, day)
        elif since is not None:
            with progress_report("harvesting records") as progress:
                due = calendar.due_listing_date(utcnow())
                summaries = backfill.ingest_oai(config, since, due, progress=progress)
        else:
            summaries = [ingest.ingest_due(config, utcnow())]
    except (ArxivError, ingest_store.IngestError) as error:
        raise click.ClickException(str(error)) from None
    for summary in summaries:
        click.echo(summary.line())
    if path is None and day is None and since is None and not summaries[0].complete:
        # The due date is not complete yet (errors, stale feeds): say so in the exit code.
        raise SystemExit(1)
