"""The demo day: loading it into a database, and the one-off repair of its translations."""
