"""ftreview introspection: list what a C extension offers to threads.

Usage: python introspect.py [--hints-json JSON] MODULE [MODULE ...]
Prints one JSON document (the ApiModel of the ftreview-stress crate) on stdout.
Run it with TSan reports off: trial calls race with nothing, but the
interpreter itself may report.

Argument values are Python expressions (source text). "@pkg.mod.Type" stands
for a fresh instance of that type, built by its first working constructor.
"""

import copy
import importlib
import inspect
import itertools
import json
import pickle
import signal
import sys
import types

FORMAT = 1
TRIAL_SECONDS = 2.0
MAX_ARITY = 3
OK_SETS_WANTED = 2
CONSTRUCTORS_WANTED = 6  # enough to find one that builds a non-empty object
MAX_TRIALS_PER_CALLABLE = 150
MAX_TRIALS_PER_ARITY = 50
MUTATION_TRIALS_WANTED = 6  # working calls tried on a method before calling it a reader
SNAPSHOT_ITEMS = 200

CATALOGUE = [
    "1", "0", "-1", "7", "2**63", "1.5", "'a'", "'key'", "''", "b'ab'",
    "None", "True", "[1, 2, 3]", "(1, 2)", "{'a': 1}", "[('a', 1), ('b', 2)]",
    "{1, 2}", "range(3)", "bytearray(b'ab')",
]
GUESSED_MUTATORS = (
    "add", "append", "clear", "discard", "extend", "insert", "merge", "pop",
    "popitem", "push", "put", "remove", "replace", "reset", "reverse", "set",
    "setdefault", "sort", "update", "upd", "write", "del",
)
# One value of each kind: the pairs and triples tried for callables of several arguments.
REPRESENTATIVES = ["'a'", "1", "None", "[1, 2, 3]", "{'a': 1}", "b'ab'", "1.5"]
BINARY_OPS = ["+", "-", "*", "|", "&", "^"]
SKIPPED_METHODS = {"__init__", "__new__", "__init_subclass__", "__subclasshook__",
                   "__reduce__", "__reduce_ex__", "__setstate__", "__getstate__",
                   "__class_getitem__", "__sizeof__", "__format__", "__dir__"}


class TrialTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise TrialTimeout()


def bounded(fn):
    """Runs fn() with a wall-clock limit (Python-level code and EINTR-aware C only)."""
    signal.setitimer(signal.ITIMER_REAL, TRIAL_SECONDS)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def first_line(doc):
    for line in (doc or "").strip().splitlines():
        if line.strip() and line.strip() != "--":
            return line.strip()[:200]
    return None


def describe_error(exc):
    text = str(exc).splitlines()[0][:160] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def signature_of(obj):
    try:
        return inspect.signature(obj)
    except (TypeError, ValueError):
        return None


def arities(sig, bound):
    """Positional argument counts worth trying (without self)."""
    if sig is None:
        return list(range(0, MAX_ARITY))
    params = list(sig.parameters.values())
    if bound and params and params[0].name in ("self", "cls", "$self", "type"):
        params = params[1:]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind == p.KEYWORD_ONLY and p.default is p.empty for p in params):
        return []
    required = sum(1 for p in positional if p.default is p.empty)
    top = len(positional)
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        top = max(top, required + 1)
    return list(range(required, min(top, MAX_ARITY) + 1))


class Api:
    def __init__(self, packages, hints):
        self.packages = packages
        self.hints = hints
        self.builders = {}  # type qualname -> constructor expression list (working)
        self.types = {}  # qualname -> type object
        self.namespace = {}
        self.values = list(hints.get("values", [])) + CATALOGUE

    # -- evaluation of argument expressions -------------------------------

    def evaluate(self, expr):
        if expr.startswith("@"):
            return self.instance(expr[1:])
        return eval(expr, self.namespace)

    def instance(self, qualname):
        for args in self.builders.get(qualname, []):
            try:
                return self.construct(qualname, args)
            except Exception:
                continue
        raise LookupError(f"no constructor for {qualname}")

    def construct(self, qualname, args):
        if len(args) == 1 and args[0].startswith("="):
            return eval(args[0][1:], self.namespace)
        return self.types[qualname](*[self.evaluate(a) for a in args])

    # -- trials -----------------------------------------------------------

    def candidate_args(self, arity, own_type):
        """Same-type instance first (two-object operations), then literals, then other types."""
        own = [f"@{own_type}"] if own_type in self.builders else []
        if arity == 0:
            return [[]]
        if arity == 1:
            pool = own + self.values + [f"@{q}" for q in sorted(self.builders) if q != own_type]
            return [[v] for v in pool]
        head = own + list(self.hints.get("values", [])) + REPRESENTATIVES
        return [list(c) for c in itertools.islice(itertools.product(head, repeat=arity), MAX_TRIALS_PER_ARITY)]

    def candidates(self, sig, bound, own_type):
        return [args for n in arities(sig, bound) for args in self.candidate_args(n, own_type)[:MAX_TRIALS_PER_ARITY]]

    def trial(self, call, arg_sets, observe=None, wanted=OK_SETS_WANTED, until=None):
        """Tries argument sets; returns the working ones and a few informative failures.
        Stops after `wanted` working sets, or `OK_SETS_WANTED` once `until()` holds."""
        found = []
        ok = 0
        tried = 0
        for args in arg_sets:
            enough = wanted if until is None or not until() else OK_SETS_WANTED
            if ok >= enough or tried >= MAX_TRIALS_PER_CALLABLE:
                break
            tried += 1
            try:
                values = [self.evaluate(a) for a in args]
            except Exception:
                continue
            try:
                result = bounded(lambda: call(values))
            except TrialTimeout:
                found.append({"args": args, "outcome": "timeout", "error": "no return within trial time"})
                break
            except TypeError as exc:
                if not found or found[-1]["outcome"] == "type-error":
                    found = [f for f in found if f["outcome"] != "type-error"]
                    found.append({"args": args, "outcome": "type-error", "error": describe_error(exc)})
                continue
            except Exception as exc:
                if sum(1 for f in found if f["outcome"] == "raised") < 2:
                    found.append({"args": args, "outcome": "raised", "error": describe_error(exc)})
                continue
            ok += 1
            entry = {"args": args, "outcome": "ok", "error": None}
            if observe is not None:
                observe(entry, result)
            found.append(entry)
        found.sort(key=lambda f: {"ok": 0, "raised": 1, "timeout": 2, "type-error": 3}[f["outcome"]])
        return [f for f in found if f["outcome"] != "type-error"] or found[:1]

    # -- discovery --------------------------------------------------------

    def owns(self, obj):
        module = getattr(obj, "__module__", None) or ""
        if isinstance(obj, types.BuiltinFunctionType):
            owner = getattr(obj, "__self__", None)
            module = getattr(owner, "__name__", module) if isinstance(owner, types.ModuleType) else module
        return any(module == p or module.startswith(p + ".") for p in self.packages)

    def register_types(self, modules):
        for module in modules:
            for _, obj in public(module):
                if isinstance(obj, type) and self.owns(obj) and not issubclass(obj, BaseException):
                    self.types.setdefault(qualname_of(obj), obj)
            self.namespace[module.__name__.split(".")[0]] = importlib.import_module(module.__name__.split(".")[0])

    def find_constructors(self):
        """Constructors in rounds, so types built from other types (proxies) resolve."""
        for qualname, exprs in self.hints.get("constructors", {}).items():
            if qualname in self.types:
                self.builders[qualname] = [["=" + e] for e in exprs]
        results = {}
        for _ in range(2):
            for qualname, cls in sorted(self.types.items()):
                if qualname in self.builders:
                    continue
                sets = self.candidates(signature_of(cls), False, None)
                found = self.trial(lambda v, cls=cls: cls(*v), sets, observe=note_size, wanted=CONSTRUCTORS_WANTED)
                working = [f for f in found if f["outcome"] == "ok"]
                working.sort(key=lambda f: (-f.pop("size", 0), len(f["args"])))
                results[qualname] = working
                if working:
                    self.builders[qualname] = [f["args"] for f in working]
        return results


def public(module):
    names = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    for name in sorted(set(names)):
        try:
            yield name, getattr(module, name)
        except AttributeError:
            continue


def qualname_of(obj):
    return f"{obj.__module__}.{obj.__qualname__}"


def note_size(entry, result):
    try:
        entry["size"] = len(result)
    except Exception:
        entry["size"] = 0


def snapshot(obj):
    """What a mutation would change: repr, len, items, instance dict, pickle."""
    parts = []
    for probe in (repr, len, lambda o: list(itertools.islice(iter(o), SNAPSHOT_ITEMS)),
                  lambda o: sorted(vars(o).items()), lambda o: pickle.dumps(o)):
        try:
            parts.append(repr(probe(obj)))
        except Exception as exc:
            parts.append(type(exc).__name__)
    return parts


def describe_function(api, qualname, fn):
    sig = signature_of(fn)
    sets = [list(a) for a in api.hints.get("arguments", {}).get(qualname, [])] + api.candidates(sig, False, None)
    return {
        "name": qualname.rsplit(".", 1)[1],
        "qualname": qualname,
        "signature": str(sig) if sig else None,
        "doc": first_line(getattr(fn, "__doc__", None)),
        "arg_sets": api.trial(lambda v: fn(*v), sets),
    }


def describe_method(api, type_qualname, name, attr, hashable):
    qualname = f"{type_qualname}.{name}"
    sig = signature_of(attr)
    sets = [list(a) for a in api.hints.get("arguments", {}).get(qualname, [])]
    sets += api.candidates(sig, True, type_qualname)
    changed = []
    returns = []

    def call(values):
        obj = api.instance(type_qualname)
        before = snapshot(obj)
        try:
            result = getattr(obj, name)(*values)
        finally:
            changed.append(snapshot(obj) != before)
        if type(result) in api.types.values():
            returns.append(qualname_of(type(result)))
        return result

    # Keep trying while nothing changed: `update(same contents)` leaves an object as it was.
    arg_sets = []
    if type_qualname in api.builders:
        arg_sets = api.trial(call, sets, wanted=MUTATION_TRIALS_WANTED, until=lambda: any(changed))
        ok = [a for a in arg_sets if a["outcome"] == "ok"]
        arg_sets = ok[:OK_SETS_WANTED] + [a for a in arg_sets if a["outcome"] != "ok"]
    # A name that says "write" wins over trials that changed nothing (`update(same)`),
    # except on hashable (likely immutable) objects: `str.replace` writes nothing.
    named_writer = not hashable and any(name == g or name.startswith(g + "_") for g in GUESSED_MUTATORS)
    if any(changed):
        mutation = "observed"
    elif named_writer:
        mutation = "guessed"
    elif changed:
        mutation = "none"
    else:
        mutation = "unknown"
    return {
        "name": name,
        "qualname": qualname,
        "signature": str(sig) if sig else None,
        "doc": first_line(getattr(attr, "__doc__", None)),
        "arg_sets": arg_sets,
        "mutation": mutation,
        "returns_type": returns[0] if returns else None,
    }


def works(fn):
    try:
        bounded(fn)
        return True
    except Exception:
        return False


def first_key(obj):
    """A key that reads an item: one of the object's own keys, else index 0."""
    try:
        key = next(iter(obj.keys()))
        obj[key]
        return repr(key) if eval(repr(key)) == key else None
    except Exception:
        pass
    return "0" if works(lambda: obj[0]) else None


def describe_protocols(api, qualname, cls):
    obj = api.instance(qualname)
    other = api.instance(qualname)
    key = first_key(obj)
    protocols = {
        "len": works(lambda: len(obj)),
        "iter": works(lambda: list(itertools.islice(iter(obj), 5))),
        "sequence": key == "0",
        "mapping": key is not None and key != "0",
        "contains": works(lambda: 1 in obj),
        "buffer": works(lambda: memoryview(obj)),
        "hash": works(lambda: hash(obj)),
        "richcompare": getattr(cls, "__eq__", None) is not object.__eq__ and works(lambda: obj == other),
        "copy": works(lambda: copy.copy(obj)),
        "pickle": works(lambda: pickle.loads(pickle.dumps(obj))),
        "number": [op for op in BINARY_OPS if works(lambda op=op: eval(f"a {op} b", {"a": obj, "b": other}))],
        "inplace": [],
        "item_key": key,
        "set_item": None,
        "del_item": False,
    }
    for op in BINARY_OPS:
        target = api.instance(qualname)
        scope = {"t": target, "b": api.instance(qualname)}
        if works(lambda op=op: exec(f"t {op}= b", scope)) and scope["t"] is target:  # in place, not rebound
            protocols["inplace"].append(op + "=")
    protocols["set_item"] = find_set_item(api, qualname, key)
    if key is not None:
        target = api.instance(qualname)
        protocols["del_item"] = works(lambda: target.__delitem__(eval(key)))
    return protocols


def find_set_item(api, qualname, key):
    keys = ([key] if key else []) + ["'a'", "'key'", "0", "1"]
    for k, v in itertools.product(keys, ["1", "'v'", "[1]"]):
        target = api.instance(qualname)
        if hasattr(target, "__setitem__") and works(lambda: target.__setitem__(eval(k), eval(v))):
            return [k, v]
    return None


def describe_properties(api, qualname, cls):
    props = []
    for name, attr in sorted(vars(cls).items()):
        if name.startswith("_") or not isinstance(attr, (property, types.GetSetDescriptorType, types.MemberDescriptorType)):
            continue
        readable = writable = False
        if qualname in api.builders:
            obj = api.instance(qualname)
            readable = works(lambda: getattr(obj, name))
            if readable:
                writable = works(lambda: setattr(obj, name, getattr(obj, name)))
        props.append({"name": name, "readable": readable, "writable": writable})
    return props


def describe_type(api, qualname, cls, constructors):
    hashable = qualname in api.builders and works(lambda: hash(api.instance(qualname)))
    methods = []
    for name in sorted(dir(cls)):
        if name in SKIPPED_METHODS or (name.startswith("_") and not name.startswith("__")):
            continue
        if name.startswith("__") and name not in ("__copy__", "__deepcopy__"):
            continue
        attr = getattr(cls, name, None)
        if not callable(attr) or isinstance(attr, type):
            continue
        methods.append(describe_method(api, qualname, name, attr, hashable))
    constructible = qualname in api.builders
    return {
        "name": cls.__qualname__,
        "qualname": qualname,
        "signature": str(signature_of(cls)) if signature_of(cls) else None,
        "doc": first_line(cls.__doc__),
        "constructors": [{"args": args} for args in api.builders.get(qualname, [])],
        "constructor_error": None if constructible else next((c["error"] for c in constructors if c.get("error")), "no argument set worked"),
        "subclassable": bool(cls.__flags__ & (1 << 10)),
        "methods": methods,
        "properties": describe_properties(api, qualname, cls),
        "protocols": describe_protocols(api, qualname, cls) if constructible else None,
    }


def main(argv):
    hints = {}
    if argv[:1] == ["--hints-json"]:
        hints = json.loads(argv[1])
        argv = argv[2:]
    if not argv:
        print("usage: introspect.py [--hints-json JSON] MODULE [MODULE ...]", file=sys.stderr)
        return 2
    signal.signal(signal.SIGALRM, _alarm)
    packages = sorted({name.split(".")[0] for name in argv})
    api = Api(packages, hints)
    loaded, report = [], []
    for name in argv:
        try:
            loaded.append(importlib.import_module(name))
            report.append({"name": name, "import_error": None})
        except BaseException as exc:  # noqa: BLE001 - an import may raise anything
            report.append({"name": name, "import_error": describe_error(exc)})
    api.register_types(loaded)
    constructor_trials = api.find_constructors()
    for entry, module in zip((r for r in report if r["import_error"] is None), loaded):
        entry["file"] = getattr(module, "__file__", None)
        entry["functions"] = [
            describe_function(api, f"{module.__name__}.{name}", obj)
            for name, obj in public(module)
            if callable(obj) and not isinstance(obj, type) and api.owns(obj)
        ]
        listed = {}  # one entry per type object, whatever aliases the module has
        for _, obj in public(module):
            if isinstance(obj, type) and api.types.get(qualname_of(obj)) is obj and _defined_here(obj, module, loaded):
                listed.setdefault(qualname_of(obj), obj)
        entry["types"] = [
            describe_type(api, qualname, obj, constructor_trials.get(qualname, [])) for qualname, obj in listed.items()
        ]
    for entry in report:
        entry.setdefault("file", None)
        entry.setdefault("functions", [])
        entry.setdefault("types", [])
    json.dump({
        "format": FORMAT,
        "python": {"version": sys.version.split()[0], "gil_enabled": bool(getattr(sys, "_is_gil_enabled", lambda: True)())},
        "modules": report,
        "values": api.values,
    }, sys.stdout, indent=1, sort_keys=True)
    print()
    return 0


def _defined_here(cls, module, loaded):
    """Lists a type under one module only: the first requested module that exposes it."""
    for other in loaded:
        if any(obj is cls for _, obj in public(other)):
            return other is module
    return False


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
