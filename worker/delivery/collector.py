"""The cyclic garbage collector during a drain: run between batches, rarely in full.

Used by worker/delivery/sending.py (`drain_day`) and benchmarks/render.py and
scale.py, which mirror it. A worker holds one day's papers and rendered
pieces (~400,000 tracked objects once its caches fill) for the whole drain;
a full collection walks them all to find nothing. So during a drain the
collector runs only when the drain says: automatic collections are off
(`gc.disable`), and after each batch the young generations are collected
(what the batch made and dropped; a batch of DELIVERY_BATCH_SIZE digests
makes little cyclic garbage, so holding it until the batch ends costs
nothing worth counting). Survivors age into the old generation, which only
a full collection walks: one after FULL_EVERY batches, then after twice as
many as last time whenever a full collection finds next to nothing (under
NEGLIGIBLE objects: rendering makes no cyclic garbage that outlives a batch,
and a drain's other work ~50 objects a batch; a drain that makes more gets
one every FULL_EVERY batches). When the drain ends, automatic collections are back as
they were, so a day dropped later (worker/digest/day_cache.py) is collected
as before.

Measured (benchmarks/README.md, "Fifth render pass"): with benchmarks/render.py
(zipf, 50,000 readers, CPU in `gc.callbacks`) automatic collections, with
young collections and a freeze after each batch and a full one every 50,
spent 0.089 ms per digest on the GC, this 0.036; in scale.py's 100k drains
(the workers' own figure) full collections every 50 batches spent 0.145 ms
per digest, these 0.070.
"""

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# Batches between full collections: 5,000 digests at the default size;
# doubled after each that finds next to nothing.
FULL_EVERY = 50
# Garbage objects a full collection may find and still count as finding
# nothing (~1 MB): in a 20,000-subscriber run each worker's full collections
# found ~2,500 every 50 batches, and walked ~400,000 objects for it (0.2-0.4 s).
NEGLIGIBLE = 10_000


@contextmanager
def settled_heap() -> Iterator[Callable[[], None]]:
    """A function to call after each batch; on exit, automatic collections are as before."""
    was_enabled = gc.isenabled()
    batches = 0
    full_every = FULL_EVERY

    def settle() -> None:
        nonlocal batches, full_every
        batches += 1
        if batches < full_every:
            gc.collect(1)
            return
        full_every = full_every * 2 if gc.collect() < NEGLIGIBLE else FULL_EVERY
        batches = 0

    gc.disable()
    try:
        yield settle
    finally:
        if was_enabled:
            gc.enable()
