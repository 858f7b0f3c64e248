"""`newsletter translate`: what a listing date's bilingual digests need, by hand.

The work is in worker/translation/job.py.
"""

import click
from flask.cli import with_appcontext

from newsletter.cli.dates import complete_listing_date, date_option
from newsletter.cli.progress import progress_report


@click.command("translate")
@date_option()
@with_appcontext
def translate_command(date_text: str | None) -> None:
    """Translate what a listing date's bilingual digests need; print what was done."""
    from newsletter import db
    from newsletter.config import settings

    config = settings()
    if config.TRANSLATION_BACKEND == "none":
        raise click.ClickException("TRANSLATION_BACKEND is none: digests are English only")
    listing_date = complete_listing_date(date_text)
    from worker.translation.job import translate_day

    # By hand the deadline does not apply: an operator may fill gaps after the digests went out.
    with progress_report("translating papers") as progress:
        report = translate_day(
            db.session(), config, listing_date, respect_deadline=False, progress=progress
        )
    click.echo(report)
