"""The cyclic garbage collector during a drain: the day's pieces kept out of its sight.

Used by worker/delivery/sending.py (`drain_day`) and benchmarks/render.py,
which mirrors it. A worker holds one day's papers and rendered pieces
(~150,000 tracked objects) for the whole drain; every full collection would
walk them all again to find nothing (~0.1 ms per digest, measured). After
each batch the drain collects what is garbage now and freezes the rest
(`gc.freeze`): later collections walk only what was made since. When the
drain ends everything is handed back to the collector (`gc.unfreeze`), so a
day dropped later (worker/delivery/day_cache.py) is collected as before.
"""

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def settled_heap() -> Iterator[Callable[[], None]]:
    """A function to call after each batch; on exit, nothing stays frozen."""

    def settle() -> None:
        # Collecting first: garbage frozen now would stay until the drain ends.
        # Freezing once, after the first batch only, left most of the gain
        # (the pieces made later are walked again and again).
        gc.collect()
        gc.freeze()

    try:
        yield settle
    finally:
        gc.unfreeze()
