"""A function that never returns, as a C loop spinning in a corrupted structure would not."""

import time


def spin(*args):
    time.sleep(3600)
