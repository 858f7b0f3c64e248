"""RQ jobs: plain importable functions of ids and dates, idempotent.

A worker runs each job inside an app context (see `newsletter worker`); without
Redis, `worker.queue.enqueue` runs them in-process.
"""

# --- subscriptions ---

# --- ingest ---

# --- translation ---

# --- digest ---
