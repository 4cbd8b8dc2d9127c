

# ---- helpers the operations call (same in every generated scenario) ---------
import itertools


def _defines(obj, name):
    """The object's type has the method (looked up in the MRO's dicts: a metaclass's
    __getattr__ never runs)."""
    return any(name in vars(klass) for klass in type(obj).__mro__)


def _touch(obj):
    """Reads an object derived from a shared one (a view, a proxy, a copy)."""
    repr(obj)
    if _defines(obj, "__len__"):
        len(obj)
    if _defines(obj, "__iter__"):
        list(itertools.islice(iter(obj), 256))


def _first_built(*makers):
    """The object of the first maker that builds one (untried constructors of a model from
    static bindings)."""
    error = LookupError("no constructor")
    for make in makers:
        try:
            return make()
        except Exception as exc:  # noqa: BLE001 - the next constructor may work
            error = exc
    raise error
