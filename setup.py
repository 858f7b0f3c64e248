"""Build hook: with NEWSLETTER_COMPILE=1, the digest's hottest modules are compiled with mypyc.

Everything else about the package is in pyproject.toml. Compiled, a digest's
render takes ~19% less CPU in a process alone and 8-10% less in a 100k
run's drains (benchmarks/README.md, "Seventh look" and "100k, compiled and
plain Python"); without the variable the package is plain Python.
Only modules that behave the same compiled are listed: the whole test suite runs
on this build in .ci/run. Not listed, and why: pieces.py (its `LRU`
subclasses `OrderedDict`, which mypyc's garbage-collection support
mishandles), core.py, chrome.py and keyword_pieces.py (compiled, a
`cached_property` is made again on every use).
"""

import os

from setuptools import setup

COMPILED = [
    "worker/digest/assembly.py",
    "worker/digest/fragments.py",
    "worker/digest/header.py",
    "worker/digest/highlight.py",
    "worker/digest/layout.py",
    "worker/digest/marks.py",
    "worker/digest/paper_texts.py",
]


def compiled_modules() -> list:
    if os.environ.get("NEWSLETTER_COMPILE") != "1":
        return []
    from mypyc.build import mypycify

    # The shared library of the group inside the package (not a top-level
    # module of its own), so it is found wherever the package is.
    return mypycify(COMPILED, opt_level="3", group_name="worker.digest.compiled")


setup(ext_modules=compiled_modules())
