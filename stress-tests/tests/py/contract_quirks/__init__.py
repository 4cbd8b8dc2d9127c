"""Pure-Python stand-ins for what C extensions do to introspection (contract tests of
introspect.py that need no TSan interpreter). Each quirk is one class or function."""

import os
import signal
import time

from ._short import Base

__all__ = ["Bomb", "Derived", "DescriptorModule", "Ghost", "RaisingProperty",
           "WithBrokenMeta", "echo", "make_hidden"]


class DescriptorModule:
    """`__module__` is a descriptor, not a string (C types with a `__module__` member)."""

    __module__ = property(lambda self: "somewhere")

    def __init__(self):
        self.items = []

    def add(self, item):
        self.items.append(item)

    def __len__(self):
        return len(self.items)


class RaisingProperty:
    """Reading one property raises."""

    def __init__(self):
        self._value = 0

    @property
    def broken(self):
        raise RuntimeError("broken on purpose")

    @property
    def value(self):
        return self._value

    @value.setter
    def value(self, new):
        self._value = new


class BrokenMeta(type):
    def __getattr__(cls, name):
        raise RuntimeError(f"metaclass refuses {name}")


class WithBrokenMeta(metaclass=BrokenMeta):
    """A class whose metaclass answers every missing attribute with RuntimeError."""

    def ping(self):
        return "pong"


class Bomb:
    """Trial calls that end the process: a fatal signal, an exit, a call that never returns."""

    def detonate(self, value):
        if isinstance(value, str):
            os.kill(os.getpid(), signal.SIGSEGV)
        return value

    def leave(self, value):
        if value is None:
            os._exit(7)
        return value

    def freeze(self, value):
        if isinstance(value, list):
            # What a C loop does: the trial's alarm never reaches Python code.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            time.sleep(3600)
        return value


class Derived(Base):
    """A public subclass of a type with a short, foreign-looking `__module__` (`_short.Base`)."""

    def twice(self):
        return self.label * 2


class _Hidden:
    """Only reachable as a result of make_hidden()."""

    def __init__(self):
        self.hits = 0

    def hit(self):
        self.hits += 1
        return self.hits


def make_hidden():
    return _Hidden()


def echo(value):
    """What a C function that returns a value with an exception set looks like from Python."""
    if isinstance(value, str):
        raise SystemError("<built-in function echo> returned a result with an exception set")
    return value


def __getattr__(name):
    # `Ghost` is exported but every read of it raises something other than AttributeError.
    raise RuntimeError(f"module attribute {name} is cursed")
