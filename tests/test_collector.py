"""The cyclic GC during a drain (worker/delivery/collector.py), on CPython's real collector."""

import gc
import weakref

from worker.delivery.collector import FULL_EVERY, NEGLIGIBLE, settled_heap


class _Node:
    """An object that can be part of a reference cycle."""

    other: "_Node | None" = None


def _cycle() -> weakref.ref:
    """A two-object cycle that only the cyclic GC can free; a weak reference to it."""
    first, second = _Node(), _Node()
    first.other, second.other = second, first
    return weakref.ref(first)


def _full_collections(settles: int, garbage_at: dict[int, int] | None = None) -> list[int]:
    """After which settle calls a full collection ran; `garbage_at`: settle -> old garbage objects dropped after it."""
    garbage_at = garbage_at or {}
    full: list[int] = []
    done = 0

    def record(phase: str, info: dict) -> None:
        if phase == "start" and info["generation"] == 2:
            full.append(done)

    gc.callbacks.append(record)
    try:
        with settled_heap() as settle:
            for done in range(1, settles + 1):
                if done in garbage_at:
                    # Alive at one settle (so it ages into the old generation), dropped before the next.
                    kept = [_Node() for _ in range(garbage_at[done])]
                    for node in kept:
                        node.other = node
                    settle()
                    del kept, node
                    continue
                settle()
    finally:
        gc.callbacks.remove(record)
    return full


def test_the_drain_runs_no_automatic_collection_and_gives_it_back():
    assert gc.isenabled()
    with settled_heap() as settle:
        assert not gc.isenabled()
        dead = _cycle()
        assert dead() is not None  # nothing collects it on its own
        settle()
        assert dead() is None  # a batch's cyclic garbage goes when the batch ends
    assert gc.isenabled()


def test_a_drain_that_started_with_the_gc_off_leaves_it_off():
    gc.disable()
    try:
        with settled_heap() as settle:
            settle()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_full_collections_come_less_often_while_they_find_next_to_nothing():
    gc.collect()
    assert _full_collections(7 * FULL_EVERY + 1) == [FULL_EVERY, 3 * FULL_EVERY, 7 * FULL_EVERY]
    # A few hundred garbage objects (a drain's thread pools, say) count as nothing.
    found = _full_collections(7 * FULL_EVERY + 1, garbage_at={2 * FULL_EVERY: 300})
    assert found == [FULL_EVERY, 3 * FULL_EVERY, 7 * FULL_EVERY]


def test_a_full_collection_that_finds_garbage_brings_the_interval_back():
    gc.collect()
    # Old garbage before the second full collection (at 3 x FULL_EVERY): it
    # finds it, so the next comes FULL_EVERY batches later, not 4 x FULL_EVERY.
    found = _full_collections(4 * FULL_EVERY + 1, garbage_at={2 * FULL_EVERY: NEGLIGIBLE})
    assert found == [FULL_EVERY, 3 * FULL_EVERY, 4 * FULL_EVERY]
