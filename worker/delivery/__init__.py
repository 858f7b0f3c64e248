"""Stage 4, send: dispatch, the delivery ledger with its leases, MIME, SMTP."""
