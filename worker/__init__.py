"""Everything that runs outside a web request: ingest, translation, digests, mail."""
