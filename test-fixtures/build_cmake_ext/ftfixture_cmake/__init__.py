"""A call tally: the C implementation when it was built, else the pure-Python one."""

try:
    from ._tally import add, count
except ImportError:
    _total = 0

    def add():
        global _total
        _total += 1
        return _total

    def count():
        return _total
