"""What a drain did: rows sent, skipped, failed and deferred, and where its CPU went.

Made by worker/delivery/batch.py's `Sender` for each drain and added up by
worker/delivery/sending.py and worker/delivery/dispatch.py; the drain's log
line ends with `cpu_line`, which benchmarks/scale.py reads with CPU_LINE.
"""

import re
from dataclasses import dataclass, field

# The CPU part of a drain's log line (`SendSummary.cpu_line`), as benchmarks/scale.py reads it.
CPU_LINE = re.compile(
    r"; render (?P<render>[\d.]+) ms, MIME (?P<mime>[\d.]+) ms, GC (?P<gc>[\d.]+) ms "
    r"CPU per digest over (?P<digests>\d+) digests"
)


@dataclass
class SendSummary:
    """What one drain (or several, added up) did."""

    sent: int = 0
    skipped: int = 0  # unsubscribed since dispatch
    failed: int = 0  # hard bounces, unrenderable rows, temporary failures given up on
    deferred: int = 0  # 4xx replies: queued again for a later attempt
    not_claimed: int = 0  # rows of the day other workers held when this drain ended
    stopped: str | None = None  # why the drain stopped early, if it did
    out_of_time: bool = False  # the drain used its time budget; rows may remain
    # What the drain's CPU went to (time.thread_time of the thread that did it,
    # as drains may run in threads of one process): digests rendered and
    # serialized, and seconds in rendering, in building the MIME, and in the
    # GC settled after each batch. Measurements, not outcomes: left out of ==.
    digests: int = 0
    render_cpu: float = field(default=0.0, compare=False)
    mime_cpu: float = field(default=0.0, compare=False)
    gc_cpu: float = field(default=0.0, compare=False)

    def add(self, other: "SendSummary") -> None:
        self.sent += other.sent
        self.skipped += other.skipped
        self.failed += other.failed
        self.deferred += other.deferred
        self.not_claimed += other.not_claimed
        self.stopped = self.stopped or other.stopped
        self.out_of_time = self.out_of_time or other.out_of_time
        self.digests += other.digests
        self.render_cpu += other.render_cpu
        self.mime_cpu += other.mime_cpu
        self.gc_cpu += other.gc_cpu

    def cpu_line(self) -> str:
        """The drain log line's CPU part (benchmarks/scale.py reads it), or "" with no digest."""
        if not self.digests:
            return ""
        per = 1000 / self.digests
        return (
            f"; render {self.render_cpu * per:.3f} ms, MIME {self.mime_cpu * per:.3f} ms, "
            f"GC {self.gc_cpu * per:.3f} ms CPU per digest over {self.digests} digests"
        )
