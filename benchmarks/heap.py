"""Where a worker's memory is: deep sizes of named objects (debugging only).

Imported by worker/delivery/batch.py's `_heap_report` when NEWSLETTER_HEAP_REPORT is
set (benchmarks/scale.py --heap-report). Walks containers and objects'
attributes, counting each object once, so shared strings are not counted twice.
"""

import os
import sys
from collections.abc import Iterator, Sized


def census(roots: dict[str, object]) -> list[str]:
    """Lines: the process's RSS, then each root's and its largest parts' sizes."""
    with open(f"/proc/{os.getpid()}/status") as status:
        rss = " ".join(line.split(":")[0] + "=" + line.split()[1] for line in status
                       if line.startswith(("VmRSS", "VmHWM")))  # fmt: skip
    lines = [f"  kB: {rss}"]
    seen: set[int] = set()
    for name, root in roots.items():
        if hasattr(root, "cache_info"):  # an lru_cache: its entries are out of reach
            lines.append(f"  {name:60} lru_cache {root.cache_info()}")
            continue
        for label, value in _parts(name, root):
            lines.append(f"  {label:60} {deep_size(value, seen) / 1e6:8.1f} MB {_count(value)}")
    return lines


def _parts(name: str, root: object) -> Iterator[tuple[str, object]]:
    """The root's attributes one level down (and two for dict values), biggest first later."""
    values = root.values() if isinstance(root, dict) else [root]
    for n, value in enumerate(values):
        attributes = getattr(value, "__dict__", {})
        for attribute, part in attributes.items():
            yield f"{name}[{n}].{attribute}", part
            for inner, piece in getattr(part, "__dict__", {}).items():
                yield f"{name}[{n}].{attribute}.{inner}", piece


def _count(value: object) -> str:
    return f"({len(value)} entries)" if isinstance(value, Sized) else ""


def deep_size(value: object, seen: set[int]) -> int:
    """Bytes of `value` and everything it reaches that `seen` does not hold yet."""
    total, stack = 0, [value]
    while stack:
        item = stack.pop()
        if (
            id(item) in seen
            or isinstance(item, type)
            or callable(item)
            and not hasattr(item, "cache_info")
        ):
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        elif not isinstance(item, (str, bytes, int, float)):
            stack.extend(getattr(item, "__dict__", {}).values())
            for slot in getattr(type(item), "__slots__", ()):
                if hasattr(item, slot):
                    stack.append(getattr(item, slot))
    return total
