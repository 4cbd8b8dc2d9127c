"""A hit counter: the C accelerator when it was built, else the pure-Python version."""

try:
    from ._accel import hit
except ImportError:
    _hits = 0

    def hit():
        global _hits
        _hits += 1
        return _hits
