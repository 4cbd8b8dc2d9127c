"""Reference counts: the C speedups when they were built, else the pure-Python fallback."""

import sys

try:
    from ._speedups import refcount
except ImportError:

    def refcount(obj):
        return sys.getrefcount(obj) - 1
