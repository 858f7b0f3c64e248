"""The cyclic garbage collector during a drain: the day's pieces kept out of its sight.

Used by worker/delivery/sending.py (`drain_day`) and benchmarks/render.py and
scale.py, which mirror it. A worker holds one day's papers and rendered
pieces (~180,000 tracked objects) for the whole drain; a full collection
walks them all to find nothing, and more often as the day's caches fill.
After each batch the drain collects the young generations (what the batch
made and dropped) and freezes the rest (`gc.freeze`): later collections walk
only what was made since. Cyclic garbage that had already aged into the old
generation is frozen with it, so every FULL_EVERY batches everything is
unfrozen and collected once; when the drain ends everything is handed back
to the collector (`gc.unfreeze`), so a day dropped later
(worker/digest/day_cache.py) is collected as before.

Measured (benchmarks/README.md, render): a full `gc.collect()` before each
freeze cost more than it saved (~0.03 ms per digest, walking each batch's
survivors); young collections plus the freeze spend ~0.02 ms per digest on
the GC where the default spends ~0.03-0.17 ms, depending on whether a full
collection falls in the window.
"""

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# Batches between full collections (of frozen objects too): 5,000 digests at the default size.
FULL_EVERY = 50


@contextmanager
def settled_heap() -> Iterator[Callable[[], None]]:
    """A function to call after each batch; on exit, nothing stays frozen."""
    batches = 0

    def settle() -> None:
        nonlocal batches
        batches += 1
        if batches % FULL_EVERY == 0:
            gc.unfreeze()
            gc.collect()
        else:
            gc.collect(1)
        gc.freeze()

    try:
        yield settle
    finally:
        gc.unfreeze()
