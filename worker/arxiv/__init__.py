"""Stage 1, papers in: arXiv client (fetch), feeds (parse), calendar, ingest, backfill, store."""
