"""Functions that leave a worker stuck, as a race that corrupted a structure or the heap
would."""

import threading
import time

_held = threading.local()


class _SlowToFree:
    def __del__(self):
        time.sleep(3600)


def spin(*args):
    """Never returns, as a C loop spinning in a corrupted structure would not."""
    time.sleep(3600)


def linger(*args):
    """Returns at once, but leaves the calling thread something that takes an hour to free
    when the thread ends, as a thread exit spinning in a corrupted heap would."""
    if not hasattr(_held, "value"):
        _held.value = _SlowToFree()
