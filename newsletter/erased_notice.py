"""The erasure's last email, a job: queued by name by the erase view
(newsletter/my_data.py) once the subscriber's rows are gone.

The address travels in the job's arguments, the one place that still holds
it after the commit; the database never sees it again. It is sent as the
account emails are (worker/jobs.py: Message-ID, Date, Auto-Submitted), with
no unsubscribe link: there is nothing left to unsubscribe from.
"""

from datetime import date

import emails
from newsletter.config import settings
from newsletter.locales import subscriber_locale
from newsletter.logging_setup import logged_job
from worker.jobs import send_account_email


@logged_job
def send_erased_notice(email: str, language: str, erased_on_iso: str) -> None:
    """Tell `email` that its data is erased (`language`: its digest language, for the chrome)."""
    config = settings()
    rendered = emails.render(
        "erased",
        subscriber_locale(language),
        # ISO 8601 reads the same in every language of the chrome.
        erased_on=date.fromisoformat(erased_on_iso).isoformat(),
        signup_url=f"{config.BASE_URL}/",
    )
    send_account_email(email, rendered)
