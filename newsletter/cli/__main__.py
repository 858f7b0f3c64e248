"""`python -m newsletter.cli`: the `newsletter` command (tests and benchmarks start it so)."""

from newsletter.cli import main

main()
