"""Progress of a long command on stderr: a bar on a terminal, plain lines otherwise.

Used by `ingest --since`, `digest send`, `subscribers import` and `translate`.
The stages below them report through a callback `progress(done, total)` and
print nothing; this module decides how it is shown. On a terminal it is
click's progress bar with counts and an ETA; in a log or a pipe, one line
every 5 seconds or every tenth of the work, and one when it is all done
("sent 4,000 / 10,000 (40%), ETA 0:01:12"). stdout keeps the command's result.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TextIO

import click

# A plain line at least this often, and at each further tenth of the work.
LINE_SECONDS = 5.0
LINE_STEPS = 10


def duration(seconds: float) -> str:
    """0:01:12, as click's bar shows an ETA."""
    return str(timedelta(seconds=round(seconds)))


class ProgressLines:
    """Plain progress lines for output that is not a terminal."""

    def __init__(
        self, verb: str, stream: TextIO, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.verb = verb
        self.stream = stream
        self.clock = clock
        self.started = clock()
        self.last_line = self.started
        self.last_step = 0
        self.last_done = 0
        self.done = self.total = 0

    def update(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        now = self.clock()
        step = done * LINE_STEPS // total if total else LINE_STEPS
        due = done >= total or step > self.last_step or now - self.last_line >= LINE_SECONDS
        if due and done != self.last_done:
            self.last_line, self.last_step = now, step
            self._write(now)

    def finish(self) -> None:
        """The last state, if it was not shown (a stage that stopped early)."""
        if self.done != self.last_done:
            self._write(self.clock())

    def _write(self, now: float) -> None:
        done, total = self.done, self.total
        self.last_done = done
        elapsed = now - self.started
        share = f" ({done * 100 // total}%)" if total else ""
        if done >= total:
            timing = f"done in {duration(elapsed)}"
        else:
            timing = f"ETA {duration(elapsed / done * (total - done))}" if done else "ETA -"
        click.echo(f"{self.verb} {done:,} / {total:,}{share}, {timing}", file=self.stream)


class ProgressBar:
    """click's progress bar, made at the first report (when the total is known)."""

    def __init__(self, verb: str, stream: TextIO) -> None:
        self.verb = verb
        self.stream = stream
        self.bar: Any = None

    def update(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = click.progressbar(
                length=total,
                label=self.verb,
                show_pos=True,
                show_percent=True,
                show_eta=True,
                file=self.stream,
            )
            self.bar.__enter__()
        self.bar.length = max(total, done)
        self.bar.update(done - self.bar.pos)

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


@contextmanager
def progress_report(verb: str) -> Iterator[Callable[[int, int], None]]:
    """A `progress(done, total)` callback for a stage; `verb` names the work ("sent")."""
    stream = click.get_text_stream("stderr")
    shown = ProgressBar(verb, stream) if stream.isatty() else ProgressLines(verb, stream)
    try:
        yield shown.update
    finally:
        shown.finish()
