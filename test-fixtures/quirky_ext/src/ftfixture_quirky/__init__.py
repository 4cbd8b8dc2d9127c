"""ftreview fixture: a thread-safe C extension whose shapes trip up introspection."""

from . import _q
from ._q import Counter, Guarded, Tagged, echo

__all__ = ["Counter", "Guarded", "Tagged", "Thing", "echo"]


class Thing(_q.Thing):
    """The C type `_q.Thing` (a short tp_name) exported through a Python subclass."""

    def shout(self):
        return self.describe().upper()
