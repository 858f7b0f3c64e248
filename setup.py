"""Build hook: with NEWSLETTER_COMPILE=1, the digest's hottest modules are compiled with mypyc.

Everything else about the package is in pyproject.toml. Compiled, the
modules that assemble a digest and build its MIME message (`COMPILED`) are
native code: ~16-28% less render CPU and ~13-20% less MIME CPU in a process
alone than plain Python (benchmarks/README.md, "Eighth look"); without the
variable the package is plain Python. The whole test suite runs on this
build in .ci/run. What these modules keep to, so that they behave the same
compiled (ARCHITECTURE.md): no `cached_property` (compiled, one is made again
on every use), no subclass of a C type (`LRU` holds its `OrderedDict`), and
annotations that say what really comes (each is checked at run time).
"""

import os

from setuptools import setup

COMPILED = [
    "worker/delivery/mime.py",
    "worker/digest/assembly.py",
    "worker/digest/chrome.py",
    "worker/digest/core.py",
    "worker/digest/fragments.py",
    "worker/digest/header.py",
    "worker/digest/highlight.py",
    "worker/digest/keyword_pieces.py",
    "worker/digest/layout.py",
    "worker/digest/marks.py",
    "worker/digest/paper_texts.py",
    "worker/digest/pieces.py",
    "worker/digest/text.py",
]


def compiled_modules() -> list:
    if os.environ.get("NEWSLETTER_COMPILE") != "1":
        return []
    from mypyc.build import mypycify

    # The shared library of the group inside the package (not a top-level
    # module of its own), so it is found wherever the package is.
    return mypycify(COMPILED, opt_level="3", group_name="worker.digest.compiled")


setup(ext_modules=compiled_modules())
