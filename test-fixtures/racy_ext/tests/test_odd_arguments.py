"""Arguments a suite passes that have no literal form: the call recorder (FTREVIEW_RECORD_CALLS)
records them by type or skips them, and the tests run as they would without it."""

import os
import threading

import pytest

import ftfixture_racy as fx


class Exploding:
    """An iterable whose iterator raises halfway."""

    def __iter__(self):
        yield 1
        raise RuntimeError("the callback raised")


class Unpicklable:
    def __reduce__(self):
        raise TypeError("not picklable")

    def __str__(self):
        return "unpicklable"


def test_a_generator_builds_a_vector():
    assert len(fx.Vector(x * x for x in range(5))) == 5


def test_a_raising_iterable_fails_the_constructor():
    with pytest.raises(RuntimeError, match="the callback raised"):
        fx.Vector(Exploding())


def test_unpicklable_arguments():
    registry = fx.Registry()
    entry = Unpicklable()
    registry.add(entry)
    lock = threading.Lock()
    registry.add(lock)
    assert registry.latest() is lock


def test_huge_arguments():
    registry = fx.Registry()
    noise = os.urandom(1 << 20)
    registry.add(noise)
    registry.add("z" * (1 << 23))
    assert len(registry.latest()) == 1 << 23
