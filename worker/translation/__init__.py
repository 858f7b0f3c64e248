"""Stage 2, translate: the translation job, its backends, prompt and placeholders."""
