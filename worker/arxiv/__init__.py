"""Stage 1, papers in: arXiv client (fetch), feeds (parse), ingest, backfill, store."""
