"""Stage 3, match and render: which papers each reader gets on a day, and how they are shown."""
