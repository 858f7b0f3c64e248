"""Late bounces and complaints: reports about digests a relay accepted and could not deliver.

`parse` reads one report message (RFC 3464 DSN, RFC 5965 ARF, simple free-text
bounces) and `sendgrid` one relay webhook request, both pure; `mailbox` fetches
reports from IMAP (I/O); `effects` matches a report to our delivery and applies
it (hard bounce counted toward BOUNCE_LIMIT, complaint unsubscribes).
Called by worker/jobs.py (`poll_bounces`, `apply_bounce_reports`) and, for the
pure `sendgrid` module only, by the web's webhook (newsletter/bounce_webhooks.py).
"""
