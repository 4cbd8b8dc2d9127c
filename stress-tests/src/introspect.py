"""ftreview introspection: list what a C extension offers to threads.

Usage: python introspect.py [--hints-json JSON] [--define-types JSON] [--time-limit SECS]
                            [--hang-grace SECS] MODULE [MODULE ...]

Prints one JSON document (the ApiModel of the ftreview-stress crate) on stdout and a log
on stderr. Run it with TSan reports off: trial calls race with nothing, but the
interpreter itself may report.

The process is a supervisor: the trials run in a worker (this script re-run with the same
interpreter and environment) that announces every call into the extension before making
it, as a one-line Python reproducer, and sends each finished piece of the model. When the
worker dies (a signal, an exit) or stops making progress, the supervisor records the
pending call, restarts the worker with the finished pieces and that call on a skip list,
and goes on.

Argument values are Python expressions (source text). "@KEY" stands for a fresh instance
of the type KEY, built by its first working constructor; "=EXPR" is a whole expression.
"""

import ast
import faulthandler
import importlib
import importlib.machinery
import inspect
import itertools
import json
import os
import re
import select
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import types

FORMAT = 2
FAIL_ENV = "FTREVIEW_TEST_FAIL_INTROSPECTION"
TRIAL_SECONDS = 2.0
IMPORT_SECONDS = 300.0
# Beyond a call's own limit (the SIGALRM that stops Python-level code) before the supervisor
# calls it a hang: only C code that never returns to the interpreter gets there.
HANG_GRACE_SECONDS = 10.0
# No message at all for this long (outside any call) is a hang too.
IDLE_SECONDS = 120.0
DEFAULT_TIME_LIMIT = 480.0
MAX_RESTARTS = 12
MAX_CRASHES_PER_OBJECT = 4
STDERR_TAIL_BYTES = 64 * 1024

MAX_ARITY = 3
OK_SETS_WANTED = 2
CONSTRUCTORS_WANTED = 6  # enough to find one that builds a non-empty object
MAX_TRIALS_PER_CALLABLE = 150
MAX_TRIALS_PER_ARITY = 50
MUTATION_TRIALS_WANTED = 6  # working calls tried on a method before calling it a reader
SNAPSHOT_ITEMS = 200
SETTER_VALUES_WANTED = 3
UNINITIALISED_PROBES = 40
LATE_TYPE_ROUNDS = 2

# One value of each kind first: a trial skips values of a kind that already worked, so the
# kinds reach the callable before more of the same kind do.
CATALOGUE = [
    "1", "'a'", "None", "[1, 2, 3]", "b'ab'", "1.5", "(1, 2)", "{'a': 1}", "True", "{1, 2}",
    "range(3)", "bytearray(b'ab')", "[('a', 1), ('b', 2)]", "0", "-1", "7", "2**63",
    "'key'", "''",
]
CATALOGUE_KINDS = {value: type(eval(value)).__name__ for value in CATALOGUE}
GUESSED_MUTATORS = (
    "add", "append", "clear", "discard", "extend", "insert", "merge", "pop",
    "popitem", "push", "put", "remove", "replace", "reset", "reverse", "set",
    "setdefault", "sort", "update", "upd", "write", "del",
)
# One value of each kind: the pairs and triples tried for callables of several arguments.
REPRESENTATIVES = ["'a'", "1", "None", "[1, 2, 3]", "{'a': 1}", "b'ab'", "1.5"]
SETTER_VALUES = ["None", "1", "'a'", "[1, 2, 3]", "1.5", "b'ab'"]
BINARY_OPS = ["+", "-", "*", "|", "&", "^"]
SKIPPED_METHODS = {"__init__", "__new__", "__init_subclass__", "__subclasshook__",
                   "__reduce__", "__reduce_ex__", "__setstate__", "__getstate__",
                   "__class_getitem__", "__sizeof__", "__format__", "__dir__"}
# Instance-dict accessors every Python class has: not the extension's code.
CLASS_PLUMBING = {"__dict__", "__weakref__"}
STDLIB_HELPERS = ["copy", "itertools", "operator", "pickle"]
C_CALLABLES = (types.BuiltinFunctionType, types.MethodDescriptorType, types.WrapperDescriptorType,
               types.ClassMethodDescriptorType)
C_ATTRIBUTES = (types.GetSetDescriptorType, types.MemberDescriptorType)
TPFLAGS_HEAPTYPE = 1 << 9
TPFLAGS_BASETYPE = 1 << 10
SIGNAL_WORDS = {"SEGV": "SIGSEGV", "BUS": "SIGBUS", "FPE": "SIGFPE", "ABRT": "SIGABRT",
                "ILL": "SIGILL", "Segmentation fault": "SIGSEGV", "Bus error": "SIGBUS",
                "Floating-point exception": "SIGFPE", "Aborted": "SIGABRT",
                "Illegal instruction": "SIGILL"}


class UsageError(Exception):
    pass


class TrialTimeout(Exception):
    pass


class SkippedTrial(Exception):
    """The call crashed or hung an earlier worker."""


class SetupFailed(Exception):
    """Building what a trial needs (an instance, an argument) failed: not the callable's fault."""


def _alarm(signum, frame):
    raise TrialTimeout()


def bounded(fn, seconds):
    """Runs fn() with a wall-clock limit (Python-level code and EINTR-aware C only)."""
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def describe_error(exc):
    try:
        text = str(exc).splitlines()[0][:160] if str(exc) else ""
    except Exception:  # noqa: BLE001 - a foreign exception's __str__ may raise
        text = ""
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def text(value):
    return value if isinstance(value, str) else None


def first_line(doc):
    for line in (text(doc) or "").strip().splitlines():
        if line.strip() and line.strip() != "--":
            return line.strip()[:200]
    return None


# -- reading foreign objects without running their code ------------------------------------
# Type attributes are read through `type`'s own descriptors, so a metaclass's __getattr__ or
# __getattribute__ never runs; values of the wrong type (a descriptor as __module__) read as None.

def type_attr(cls, name):
    try:
        return type.__dict__[name].__get__(cls, type)
    except Exception:  # noqa: BLE001 - heap types compute some of these from their dict
        return None


def class_dict(cls):
    return type_attr(cls, "__dict__") or {}


def mro(cls):
    return type_attr(cls, "__mro__") or (cls,)


def is_type(obj):
    return issubclass(type(obj), type)


def is_exception_type(cls):
    return any(base is BaseException for base in mro(cls))


def module_attr_text(obj):
    """`obj.__module__` when it is a string (functions, instances); None otherwise."""
    try:
        return text(getattr(obj, "__module__", None))
    except Exception:  # noqa: BLE001
        return None


def signature_of(obj):
    try:
        return inspect.signature(obj)
    except Exception:  # noqa: BLE001 - anything: metaclasses, __signature__ properties
        return None


def signature_text(sig):
    try:
        return str(sig) if sig is not None else None
    except Exception:  # noqa: BLE001 - a default value's repr
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


def lookup(cls, name):
    """(raw attribute, defining class) through the MRO's dicts, or (None, None)."""
    for klass in mro(cls):
        namespace = class_dict(klass)
        if name in namespace:
            return namespace[name], klass
    return None, None


def is_c_callable(raw):
    if isinstance(raw, (staticmethod, classmethod)):
        raw = raw.__func__
    return isinstance(raw, C_CALLABLES)


def has_c_code(cls):
    """The class's own dict holds descriptors of C functions or C struct members."""
    namespace = class_dict(cls)
    for name, raw in namespace.items():
        if name in CLASS_PLUMBING:
            continue
        if is_c_callable(raw) or isinstance(raw, types.GetSetDescriptorType):
            return True
        if isinstance(raw, types.MemberDescriptorType) and "__slots__" not in namespace:
            return True
    return False


def literal_key(source):
    """`source` when it is a Python literal (safe to put in a scenario), else None."""
    try:
        ast.literal_eval(source)
        return source
    except Exception:  # noqa: BLE001
        return None


# -- the worker --------------------------------------------------------------------------

class Channel:
    """JSON lines to the supervisor."""

    def __init__(self, fd):
        self.fd = fd

    def send(self, message):
        data = (json.dumps(message) + "\n").encode()
        while data:
            data = data[os.write(self.fd, data):]


class Run:
    """The worker's link to the supervisor: announced calls, finished pieces, skips."""

    def __init__(self, channel, state):
        self.channel = channel
        self.units = state["units"]
        self.skip_calls = set(state["skip_calls"])
        self.skip_units = set(state["skip_units"])

    def step(self, call, fn, limit=TRIAL_SECONDS):
        """Runs fn (it calls into foreign code) announced as `call`, its one-line reproducer."""
        if call in self.skip_calls:
            raise SkippedTrial(call)
        self.channel.send({"t": "step", "call": call, "limit": limit})
        try:
            return bounded(fn, limit)
        finally:
            self.channel.send({"t": "end"})

    def unit(self, key, compute, crash_limit=MAX_CRASHES_PER_OBJECT, model_piece=True):
        """A finished piece of the model: computed once, kept across worker restarts. An
        unexpected error skips it (listed in the model) instead of ending introspection;
        so do `crash_limit` crashes or hangs of the worker while on it. A unit that is no
        `model_piece` (probes whose only findings are crashes) is not listed when skipped."""
        if key in self.units:
            return self.units[key]
        if key in self.skip_units:
            return None
        self.channel.send({"t": "unit", "key": key, "crash_limit": crash_limit, "model_piece": model_piece})
        try:
            result = compute()
        except Exception as exc:  # noqa: BLE001 - one object must not end introspection
            self.skip(key, exc)
            return None
        self.units[key] = result
        self.channel.send({"t": "done", "key": key, "result": result})
        return result

    def skip(self, name, exc):
        error = describe_error(exc)
        print(f"introspection: skipped {name}: {error}", file=sys.stderr, flush=True)
        self.channel.send({"t": "skipped", "object": name, "error": error})


class Scope:
    """One namespace of trial code. Statements that shaped it are kept, so a call's
    reproducer replays them: `import pkg; obj = pkg.T(); obj.add(1); repr(obj)`."""

    def __init__(self, intro):
        self.intro = intro
        self.ns = dict(intro.namespace)
        self.history = []

    def run(self, source, record=True):
        call = self.intro.reproducer(self.history + [source])
        code = compile_trial(source)
        result = self.intro.run.step(call, lambda: eval(code, self.ns))
        if record:
            self.history.append(source)
        return result

    def setup(self, source):
        try:
            return self.run(source)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - whatever the setup raised
            raise SetupFailed(describe_error(exc)) from None

    def bind_args(self, args):
        """Argument sources: literals inline, instances and expressions built first (a0 = ...)."""
        sources = []
        for index, arg in enumerate(args):
            if arg.startswith(("@", "=")):
                self.setup(f"a{index} = {self.intro.arg_source(arg)}")
                sources.append(f"a{index}")
            else:
                sources.append(arg)
        return ", ".join(sources)

    def works(self, source):
        try:
            self.run(source, record=False)
            return True
        except KeyboardInterrupt:
            raise
        except BaseException:  # noqa: BLE001 - a probe that fails says "no"
            return False


_COMPILED = {}


def compile_trial(source):
    if source not in _COMPILED:
        try:
            _COMPILED[source] = compile(source, "<ftreview trial>", "eval")
        except SyntaxError:
            _COMPILED[source] = compile(source, "<ftreview trial>", "exec")
    return _COMPILED[source]


class Introspection:
    def __init__(self, run, requested, options):
        self.run = run
        self.requested = requested
        self.hints = options["hints"]
        self.define_types = list(options["define_types"])
        self.packages = sorted({name.split(".")[0] for name in requested})
        self.namespace = {name: importlib.import_module(name) for name in STDLIB_HELPERS}
        self.modules = {}  # name -> module object, in introspection order
        self.extension_modules = set()
        self.types = {}  # key -> type object
        self.type_records = {}  # key -> {key, access, module, name}
        self.functions = {}  # (module, name) -> {module, name, access, reaches_c}
        self.found = {}  # id(object) -> key: every type or function is listed once
        self.builders = {}  # type key -> constructor argument lists that worked
        self.values = list(self.hints.get("values", [])) + CATALOGUE

    # -- sources and reproducers ---------------------------------------------------------

    def reproducer(self, statements):
        body = "; ".join(s if "\n" not in s else f"exec({s!r})" for s in statements)
        names = sorted(set(self.modules) | set(STDLIB_HELPERS))
        imports = [n for n in names if re.search(r"(?<![\w.])" + re.escape(n) + r"\b", body)]
        return f"import {', '.join(imports)}; {body}" if imports else body

    def access(self, key):
        return self.type_records[key]["access"]

    def instance_source(self, key):
        builders = self.builders.get(key)
        if not builders:
            raise SetupFailed(f"no constructor for {key}")
        return self.constructor_source(key, builders[0])

    def constructor_source(self, key, args):
        if len(args) == 1 and args[0].startswith("="):
            return f"({args[0][1:]})"
        return f"{self.access(key)}({', '.join(self.arg_source(a) for a in args)})"

    def arg_source(self, arg):
        if arg.startswith("@"):
            return self.instance_source(arg[1:])
        if arg.startswith("="):
            return f"({arg[1:]})"
        return arg

    def arg_kind(self, arg):
        return CATALOGUE_KINDS.get(arg, arg)

    # -- trials ----------------------------------------------------------------------------

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
        An argument set whose kinds already worked is skipped. Stops after `wanted` working
        sets, or `OK_SETS_WANTED` once `until()` holds."""
        found = []
        worked = set()
        tried = 0
        for args in arg_sets:
            enough = wanted if until is None or not until() else OK_SETS_WANTED
            if len(worked) >= enough or tried >= MAX_TRIALS_PER_CALLABLE:
                break
            kinds = tuple(self.arg_kind(a) for a in args)
            if kinds in worked:
                continue
            tried += 1
            try:
                result = call(args)
            except (SkippedTrial, SetupFailed):
                continue
            except TrialTimeout:
                found.append({"args": args, "outcome": "timeout", "error": "no return within trial time"})
                break
            except TypeError as exc:
                if not found or found[-1]["outcome"] == "type-error":
                    found = [f for f in found if f["outcome"] != "type-error"]
                    found.append({"args": args, "outcome": "type-error", "error": describe_error(exc)})
                continue
            except SystemError as exc:  # a C function broke the C-API contract
                if not any(f["outcome"] == "internal-error" for f in found):
                    found.append({"args": args, "outcome": "internal-error", "error": describe_error(exc)})
                continue
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # noqa: BLE001 - accepted arguments, raised anyway
                if sum(1 for f in found if f["outcome"] == "raised") < 2:
                    found.append({"args": args, "outcome": "raised", "error": describe_error(exc)})
                continue
            worked.add(kinds)
            entry = {"args": args, "outcome": "ok", "error": None}
            if observe is not None:
                observe(entry, result)
            found.append(entry)
        rank = {"ok": 0, "internal-error": 1, "raised": 2, "timeout": 3, "type-error": 4}
        found.sort(key=lambda f: rank[f["outcome"]])
        return [f for f in found if f["outcome"] != "type-error"] or found[:1]

    # -- modules ---------------------------------------------------------------------------

    def load(self, name):
        def imported():
            try:
                module = self.run.step(f"import {name}", lambda: importlib.import_module(name), IMPORT_SECONDS)
            except SkippedTrial:
                return self.module_entry(name, None, "the import crashed or hung the interpreter (see crashed_trials)")
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # noqa: BLE001 - an import may raise anything
                return self.module_entry(name, None, describe_error(exc))
            return self.module_entry(name, module, None)

        entry = self.run.unit(f"module {name}", imported)
        if entry and entry["import_error"] is None:
            # Kept pieces come from an earlier worker: this process imports again.
            self.adopt_module(name, self.run.step(f"import {name}", lambda: importlib.import_module(name), IMPORT_SECONDS))

    def module_entry(self, name, module, error):
        if module is not None:
            self.adopt_module(name, module)
        return {"name": name, "file": text(getattr(module, "__file__", None)) if module else None,
                "import_error": error, "extension": name in self.extension_modules}

    def adopt_module(self, name, module):
        self.modules[name] = module
        top = name.split(".")[0]
        self.namespace[top] = sys.modules.get(top, module)
        if is_extension_module(module):
            self.extension_modules.add(name)

    def extension_submodules(self):
        """Extension modules the packages imported that were not asked for."""
        found = []
        for name, module in sorted(sys.modules.items()):
            if name in self.modules or name.split(".")[0] not in self.packages:
                continue
            if isinstance(module, types.ModuleType) and is_extension_module(module):
                found.append((name, module))
        for name, module in found:
            self.run.unit(f"module {name}", lambda name=name, module=module: self.module_entry(name, module, None))
            self.adopt_module(name, module)

    def is_ours(self, module_name):
        """A module name of the packages, or an extension module's short name (a C type's
        tp_name `_ext.Proxy` gives `__module__ == "_ext"` inside `pkg._ext`)."""
        if module_name is None:
            return False
        if any(module_name == p or module_name.startswith(p + ".") for p in self.packages):
            return True
        return any(module_name == m.rsplit(".", 1)[-1] for m in self.extension_modules)

    def is_foreign(self, cls):
        """A type of another module (builtins, the standard library): it is that module's
        attribute under its own name."""
        module_name = text(type_attr(cls, "__module__"))
        if module_name is None or self.is_ours(module_name):
            return False
        owner = sys.modules.get(module_name)
        try:
            return owner is not None and vars(owner).get(text(type_attr(cls, "__name__"))) is cls
        except Exception:  # noqa: BLE001 - sys.modules may hold anything
            return False

    def is_extension_type(self, cls):
        """Defined by C code of the extension: not foreign, and static or holding C descriptors."""
        if self.is_foreign(cls):
            return False
        flags = type_attr(cls, "__flags__") or 0
        return not flags & TPFLAGS_HEAPTYPE or has_c_code(cls)

    def matched_define_type(self, cls):
        """The `--define-types` entry (a tp_name or a Python binding name) naming cls."""
        name = text(type_attr(cls, "__name__"))
        module_name = text(type_attr(cls, "__module__"))
        qualname = text(type_attr(cls, "__qualname__"))
        names = {name}
        if module_name:
            names |= {f"{module_name}.{name}", f"{module_name}.{qualname}"}
        for wanted in self.define_types:
            if wanted in names or (module_name is None and wanted.rsplit(".", 1)[-1] == name):
                return wanted
        return None

    # -- discovery ---------------------------------------------------------------------------

    def discover(self):
        names = list(self.modules)
        for name in names:
            self.discovery_unit(f"attributes {name}", lambda found, name=name: self.module_attributes(name, found))
        for name in names:
            self.discovery_unit(f"bases {name}", lambda found, name=name: self.bases_and_instances(name, found))

    def discovery_unit(self, key, search):
        found = {"types": [], "functions": [], "matched": []}
        result = self.run.unit(key, lambda: search(found) or found)
        for record in (result or {}).get("types", []):
            if record["key"] not in self.type_records:  # from an earlier worker
                cls = self.resolve(record["access"])
                if cls is not None:
                    self.add_type(record, cls)
        for record in (result or {}).get("functions", []):
            self.functions.setdefault((record["module"], record["name"]), record)

    def resolve(self, access):
        try:
            return Scope(self).run(access, record=False)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001
            self.run.skip(access, exc)
            return None

    def add_type(self, record, cls):
        self.type_records[record["key"]] = record
        self.types[record["key"]] = cls
        self.found[id(cls)] = record["key"]

    def type_key(self, cls, access):
        module_name = text(type_attr(cls, "__module__"))
        qualname = text(type_attr(cls, "__qualname__"))
        key = f"{module_name}.{qualname}" if module_name and qualname else access
        return access if key in self.types and self.types[key] is not cls else key

    def type_record(self, cls, access, module_name):
        return {"key": self.type_key(cls, access), "access": access, "module": module_name,
                "name": text(type_attr(cls, "__name__")) or access.rsplit(".", 1)[-1]}

    def take_type(self, cls, access, module_name, found):
        record = self.type_record(cls, access, module_name)
        self.add_type(record, cls)
        found["types"].append(record)
        matched = self.matched_define_type(cls)
        if matched:
            found["matched"].append(matched)

    def module_attributes(self, module_name, found):
        module = self.modules[module_name]
        extension = module_name in self.extension_modules
        for name in attribute_names(module, extension):
            label = f"{module_name}.{name}"
            obj = vars(module).get(name, _MISSING)
            if obj is _MISSING:  # provided by the module's __getattr__
                try:
                    obj = Scope(self).run(label, record=False)
                except AttributeError:
                    continue
                except SkippedTrial:
                    continue
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:  # noqa: BLE001
                    self.run.skip(label, exc)
                    continue
            if id(obj) in self.found:
                continue
            try:
                self.consider(obj, name, label, module_name, module, extension, found)
            except Exception as exc:  # noqa: BLE001 - one object must not end introspection
                self.run.skip(label, exc)

    def consider(self, obj, name, label, module_name, module, extension, found):
        if is_type(obj):
            if is_exception_type(obj):
                return
            # A module attribute whose __module__ is no string (a descriptor) is taken too.
            module_text = text(type_attr(obj, "__module__"))
            ours = (not self.is_foreign(obj)) if extension else (
                module_text is None or self.is_ours(module_text) or self.is_extension_type(obj))
            if ours or self.matched_define_type(obj):
                self.take_type(obj, label, module_name, found)
        elif callable(obj) and not isinstance(obj, types.ModuleType):
            reaches_c = self.function_reaches_c(obj, module)
            if reaches_c is None:
                return
            self.found[id(obj)] = label
            record = {"module": module_name, "name": name, "access": label, "reaches_c": reaches_c}
            self.functions[(module_name, name)] = record
            found["functions"].append(record)

    def function_reaches_c(self, obj, module):
        """True for the extension's C functions, False for the packages' Python callables,
        None for someone else's."""
        if isinstance(obj, types.BuiltinFunctionType):
            owner = obj.__self__
            if owner is module or (isinstance(owner, types.ModuleType) and self.is_ours(text(owner.__name__))):
                return True
            return None
        return False if self.is_ours(module_attr_text(obj)) else None

    def bases_and_instances(self, module_name, found):
        """C bases of the listed classes (a Python subclass exports an extension type), and
        the types of module-level objects that `--define-types` names."""
        for key, record in list(self.type_records.items()):
            if record["module"] != module_name:
                continue
            for index, base in enumerate(mro(self.types[key])):
                if index and id(base) not in self.found and (
                        self.matched_define_type(base) or self.is_extension_type(base)):
                    self.take_type(base, f"{record['access']}.__mro__[{index}]", module_name, found)
        for name, obj in sorted(vars(self.modules[module_name]).items()):
            kind = type(obj)
            if id(kind) not in self.found and not is_type(obj) and self.matched_define_type(kind):
                self.take_type(kind, f"type({module_name}.{name})", module_name, found)

    # -- constructors ----------------------------------------------------------------------------

    def find_constructors(self):
        """Constructors in rounds, so types built from other types (proxies) resolve."""
        for key, exprs in self.hints.get("constructors", {}).items():
            if key in self.types:
                self.builders[key] = [["=" + e] for e in exprs]
        for round_index in (1, 2):
            for key in sorted(self.types):
                if key in self.builders:
                    continue
                result = self.run.unit(f"constructors {round_index} {key}", lambda key=key: self.constructor_trials(key))
                if result and result["working"]:
                    self.builders[key] = result["working"]

    def constructor_trials(self, key):
        def build(args):
            scope = Scope(self)
            scope.run(f"obj = {self.access(key)}({scope.bind_args(args)})")
            return scope

        def size(entry, scope):
            try:
                entry["size"] = scope.run("len(obj)", record=False)
            except KeyboardInterrupt:
                raise
            except BaseException:  # noqa: BLE001
                entry["size"] = 0
            if not isinstance(entry["size"], int):
                entry["size"] = 0

        sets = self.candidates(signature_of(self.types[key]), False, None)
        found = self.trial(build, sets, observe=size, wanted=CONSTRUCTORS_WANTED)
        working = [f for f in found if f["outcome"] == "ok"]
        working.sort(key=lambda f: (-f.pop("size", 0), len(f["args"])))
        error = next((f["error"] for f in found if f.get("error")), "no argument set worked")
        return {"working": [f["args"] for f in working], "error": error}

    def constructor_error(self, key):
        for round_index in (2, 1):
            result = self.run.units.get(f"constructors {round_index} {key}")
            if result:
                return result["error"]
        return "no argument set worked"

    # -- functions ---------------------------------------------------------------------------------

    def describe_function(self, record):
        fn = self.resolve(record["access"])
        qualname = f"{record['module']}.{record['name']}"
        discovered = []

        def call(args):
            scope = Scope(self)
            result = scope.run(f"{record['access']}({scope.bind_args(args)})")
            self.note_return(result, f"{record['access']}({', '.join(map(self.arg_source, args))})",
                             record["module"], discovered)
            return result

        sig = signature_of(fn)
        sets = [list(a) for a in self.hints.get("arguments", {}).get(qualname, [])] + self.candidates(sig, False, None)
        entry = {
            "name": record["name"],
            "qualname": qualname,
            "signature": signature_text(sig),
            "doc": first_line(getattr(fn, "__doc__", None)),
            "arg_sets": self.trial(call, sets),
            "reaches_c": record["reaches_c"],
        }
        return {"entry": entry, "discovered": discovered}

    def note_return(self, result, expression, module_name, discovered):
        """The key of the result's type when it is one of the extension's; a type not yet
        listed is discovered, with the expression that built the result as its constructor."""
        kind = type(result)
        if id(kind) in self.found:
            return self.found[id(kind)]
        module_text = text(type_attr(kind, "__module__"))
        if not (self.matched_define_type(kind) or (self.is_ours(module_text) and not self.is_foreign(kind))):
            return None
        access = f"type({expression})"
        key = self.type_key(kind, access)
        if all(d["key"] != key for d in discovered):
            discovered.append({"key": key, "access": access, "expression": expression, "module": module_name,
                               "name": text(type_attr(kind, "__name__")) or key,
                               "matched": self.matched_define_type(kind)})
        return key

    # -- types -------------------------------------------------------------------------------------

    def describe_type(self, key):
        cls = self.types[key]
        record = self.type_records[key]
        extension = self.is_extension_type(cls)
        discovered = []
        constructible = key in self.builders
        hashable = constructible and self.hashable(key)
        methods = [self.describe_method(key, name, raw, klass, hashable, discovered)
                   for name, raw, klass in self.methods_of(cls)]
        name = text(type_attr(cls, "__name__")) or record["name"]
        module_name = text(type_attr(cls, "__module__"))
        sig = signature_of(cls)
        entry = {
            "name": name,
            "qualname": key,
            "access": record["access"],
            "tp_name": (name if module_name in (None, "builtins") else f"{module_name}.{name}") if extension else None,
            "extension": extension,
            "signature": signature_text(sig),
            "doc": first_line(type_attr(cls, "__doc__")),
            "constructors": [{"args": args} for args in self.builders.get(key, [])],
            "constructor_error": None if constructible else self.constructor_error(key),
            "subclassable": bool((type_attr(cls, "__flags__") or 0) & TPFLAGS_BASETYPE),
            "methods": methods,
            "properties": self.describe_properties(key),
            "protocols": self.describe_protocols(key) if constructible else None,
            "c_slots": self.c_slots(cls),
        }
        return {"entry": entry, "discovered": discovered}

    def own_classes(self, cls):
        """The MRO without builtins and other modules' types: what the packages define."""
        return [klass for klass in mro(cls) if not self.is_foreign(klass)]

    def methods_of(self, cls):
        seen = set()
        for klass in mro(cls):
            own = not self.is_foreign(klass)
            for name, raw in sorted(class_dict(klass).items()):
                if name in seen:
                    continue
                seen.add(name)
                if not own or name in SKIPPED_METHODS or (name.startswith("_") and not name.startswith("__")):
                    continue
                if name.startswith("__") and name not in ("__copy__", "__deepcopy__"):
                    continue
                if is_type(raw) or not (callable(raw) or isinstance(raw, (staticmethod, classmethod))):
                    continue
                yield name, raw, klass

    def c_slots(self, cls):
        """Dunder methods implemented in C by the extension's classes of the MRO."""
        slots = set()
        for klass in self.own_classes(cls):
            if not self.is_extension_type(klass):
                continue
            for name, raw in class_dict(klass).items():
                if name.startswith("__") and name.endswith("__") and name not in CLASS_PLUMBING and is_c_callable(raw):
                    slots.add(name)
        return sorted(slots)

    def hashable(self, key):
        try:
            return Scope(self).works(f"hash({self.instance_source(key)})")
        except SetupFailed:
            return False

    def snapshot(self, scope):
        """What a mutation would change: repr, len, items, instance dict, pickle."""
        parts = []
        for probe in ("repr(obj)", "repr(len(obj))", f"repr(list(itertools.islice(iter(obj), {SNAPSHOT_ITEMS})))",
                      "repr(sorted(vars(obj).items()))", "repr(pickle.dumps(obj))"):
            try:
                parts.append(scope.run(probe, record=False))
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # noqa: BLE001
                parts.append(type(exc).__name__)
        return parts

    def describe_method(self, key, name, raw, klass, hashable, discovered):
        qualname = f"{key}.{name}"
        sig = signature_of(raw)
        sets = [list(a) for a in self.hints.get("arguments", {}).get(qualname, [])]
        sets += self.candidates(sig, True, key)
        changed = []
        returns = []

        def call(args):
            scope = Scope(self)
            scope.setup(f"obj = {self.instance_source(key)}")
            arguments = scope.bind_args(args)
            before = self.snapshot(scope)
            try:
                result = scope.run(f"obj.{name}({arguments})")
            finally:
                changed.append(self.snapshot(scope) != before)
            expression = f"{self.instance_source(key)}.{name}({', '.join(map(self.arg_source, args))})"
            returns.append(self.note_return(result, expression, self.type_records[key]["module"], discovered))
            return result

        # Keep trying while nothing changed: `update(same contents)` leaves an object as it was.
        arg_sets = []
        if key in self.builders:
            arg_sets = self.trial(call, sets, wanted=MUTATION_TRIALS_WANTED, until=lambda: any(changed))
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
            "signature": signature_text(sig),
            "doc": first_line(getattr(raw, "__doc__", None) if is_c_callable(raw) or isinstance(raw, types.FunctionType) else None),
            "arg_sets": arg_sets,
            "mutation": mutation,
            "returns_type": next((r for r in returns if r), None),
            "reaches_c": is_c_callable(raw) and self.is_extension_type(klass),
        }

    def properties_of(self, cls):
        seen = set()
        for klass in mro(cls):
            namespace = class_dict(klass)
            for name, raw in sorted(namespace.items()):
                if name in seen:
                    continue
                seen.add(name)
                if name.startswith("_") or self.is_foreign(klass):
                    continue
                if isinstance(raw, (property,) + C_ATTRIBUTES):
                    reaches_c = isinstance(raw, C_ATTRIBUTES) and self.is_extension_type(klass) and (
                        isinstance(raw, types.GetSetDescriptorType) or "__slots__" not in namespace)
                    yield name, reaches_c

    def describe_properties(self, key):
        props = []
        for name, reaches_c in self.properties_of(self.types[key]):
            readable = writable = False
            set_values = []
            if key in self.builders:
                scope = Scope(self)
                try:
                    scope.setup(f"obj = {self.instance_source(key)}")
                    readable = scope.works(f"obj.{name}")
                    writable = readable and scope.works(f"obj.{name} = obj.{name}")
                    set_values = self.setter_values(key, name)
                except SetupFailed:
                    pass
            props.append({"name": name, "readable": readable, "writable": writable or bool(set_values),
                          "set_values": set_values, "reaches_c": reaches_c})
        return props

    def setter_values(self, key, name):
        """Values `obj.name = value` accepts on a fresh instance (a setter replacing what
        readers hold is a race of its own)."""
        accepted = []
        for value in SETTER_VALUES:
            if len(accepted) >= SETTER_VALUES_WANTED:
                break
            scope = Scope(self)
            try:
                scope.setup(f"obj = {self.instance_source(key)}")
            except SetupFailed:
                break
            if scope.works(f"obj.{name} = {value}"):
                accepted.append(value)
        return accepted

    def first_key(self, key):
        """A key that reads an item: one of the object's own keys (a literal), else index 0."""
        scope = Scope(self)
        try:
            scope.setup(f"a = {self.instance_source(key)}")
        except SetupFailed:
            return None
        try:
            scope.setup("k = next(iter(a.keys()))")
            key = literal_key(text(scope.run("repr(k)", record=False)) or "")
            if key is not None and scope.works(f"a[{key}]"):
                return key
        except (SetupFailed, SkippedTrial, TrialTimeout):
            pass
        except KeyboardInterrupt:
            raise
        except BaseException:  # noqa: BLE001
            pass
        return "0" if scope.works("a[0]") else None

    def operand_source(self, scope, key, operand):
        if operand.startswith("@"):
            scope.setup(f"o = {self.instance_source(key)}")
            return "o"
        return operand

    def describe_protocols(self, key):
        cls = self.types[key]
        scope = Scope(self)
        scope.setup(f"a = {self.instance_source(key)}")
        scope.setup(f"b = {self.instance_source(key)}")
        item_key = self.first_key(key)
        operands = [f"@{key}", "1"]
        eq_class = lookup(cls, "__eq__")[1]
        protocols = {
            "len": scope.works("len(a)"),
            "iter": scope.works("list(itertools.islice(iter(a), 5))"),
            "sequence": item_key == "0",
            "mapping": item_key is not None and item_key != "0",
            "contains": scope.works("1 in a"),
            "buffer": scope.works("memoryview(a)"),
            "hash": scope.works("hash(a)"),
            "richcompare": eq_class is not object and scope.works("a == b"),
            "copy": scope.works("copy.copy(a)"),
            "pickle": scope.works("pickle.loads(pickle.dumps(a))"),
            "number": [{"op": op, "operand": operand} for op in BINARY_OPS for operand in operands
                       if scope.works(f"a {op} {'b' if operand.startswith('@') else operand}")],
            "inplace": [],
            "item_key": item_key,
            "set_item": None,
            "del_item": False,
        }
        for op, operand in itertools.product(BINARY_OPS, operands):
            fresh = Scope(self)
            try:
                fresh.setup(f"t = {self.instance_source(key)}")
                right = self.operand_source(fresh, key, operand)
            except SetupFailed:
                continue
            target = fresh.ns["t"]
            if fresh.works(f"t {op}= {right}") and fresh.ns["t"] is target:  # in place, not rebound
                protocols["inplace"].append({"op": op + "=", "operand": operand})
        protocols["set_item"] = self.find_set_item(key, item_key)
        if item_key is not None:
            fresh = Scope(self)
            try:
                fresh.setup(f"t = {self.instance_source(key)}")
                protocols["del_item"] = fresh.works(f"del t[{item_key}]")
            except SetupFailed:
                pass
        return protocols

    def find_set_item(self, key, item_key):
        if lookup(self.types[key], "__setitem__")[0] is None:
            return None
        keys = ([item_key] if item_key else []) + ["'a'", "'key'", "0", "1"]
        for k, v in itertools.product(keys, ["1", "'v'", "[1]"]):
            scope = Scope(self)
            try:
                scope.setup(f"t = {self.instance_source(key)}")
            except SetupFailed:
                return None
            if scope.works(f"t[{k}] = {v}"):
                return [k, v]
        return None

    def describe_types(self):
        for key in sorted(self.type_records):
            self.run.unit(f"type {self.type_records[key]['module']} {key}", lambda key=key: self.describe_type(key))

    def describe_functions(self):
        for (module_name, name), record in sorted(self.functions.items()):
            self.run.unit(f"function {module_name} {name}", lambda record=record: self.describe_function(record))

    def late_types(self):
        """Types only met as results (views, iterators, a factory's product): built by the
        expression that produced them."""
        for _ in range(LATE_TYPE_ROUNDS):
            pending = {}
            for key, result in list(self.run.units.items()):
                if key.startswith(("type ", "function ")) and result:
                    for found in result["discovered"]:
                        if found["key"] not in self.type_records:
                            pending.setdefault(found["key"], found)
            if not pending:
                return
            for key, found in pending.items():
                cls = self.resolve(found["access"])
                if cls is None or not is_type(cls):
                    continue
                self.add_type({k: found[k] for k in ("key", "access", "module", "name")}, cls)
                self.builders[key] = [["=" + found["expression"]]]
                self.run.unit(f"type {found['module']} {key}", lambda key=key: self.describe_type(key))

    def probe_uninitialised(self, key):
        """Calls on an instance whose __init__ never ran (`T.__new__(T)`): C state that tp_init
        sets is still NULL. A crash here is a single-threaded bug of the extension."""
        cls = self.types[key]
        slots = set(self.c_slots(cls))
        if not {"__new__", "__init__"} <= slots:
            return {"probes": 0}
        access = self.access(key)
        probes = [source for dunder, source in (
            ("__repr__", "repr(x)"), ("__len__", "len(x)"), ("__iter__", "list(itertools.islice(iter(x), 5))"),
            ("__hash__", "hash(x)"), ("__eq__", "x == x"), ("__getitem__", "x[0]"), ("__contains__", "1 in x"),
            ("__bool__", "bool(x)"),
        ) if dunder in slots]
        for op, name in zip(BINARY_OPS, ("add", "sub", "mul", "or", "and", "xor")):
            if f"__i{name}__" in slots:
                probes += [f"x {op}= 1", f"x {op}= x"]
            if f"__{name}__" in slots:
                probes += [f"x {op} 1", f"x {op} x"]
        probes += [f"x.{name}" for name, reaches_c in self.properties_of(cls) if reaches_c]
        probes += [f"x.{name}()" for name, raw, klass in self.methods_of(cls)
                   if is_c_callable(raw) and self.is_extension_type(klass)]
        for probe in probes[:UNINITIALISED_PROBES]:
            scope = Scope(self)
            try:
                scope.setup(f"x = {access}.__new__({access})")
            except SetupFailed:
                break
            scope.works(probe)
        return {"probes": len(probes[:UNINITIALISED_PROBES])}

    def run_all(self):
        for name in self.requested:
            self.load(name)
        self.extension_submodules()
        self.run.unit("python", python_info)
        self.discover()
        self.find_constructors()
        self.describe_functions()
        self.describe_types()
        self.late_types()
        for key in sorted(self.type_records):
            # One crash shows the bug (state that only __init__ sets); the rest of the probes
            # would likely crash the same way, each costing a restart.
            self.run.unit(f"uninitialised {key}", lambda key=key: self.probe_uninitialised(key),
                          crash_limit=1, model_piece=False)


_MISSING = object()


def attribute_names(module, extension):
    """Public names (or `__all__`); an extension module's underscore names too, as the
    package's Python layer calls them."""
    namespace = vars(module)
    exported = namespace.get("__all__")
    if not extension and isinstance(exported, (list, tuple)) and all(isinstance(n, str) for n in exported):
        names = exported
    else:
        names = [n for n in namespace if isinstance(n, str) and not (n.startswith("__") or (n.startswith("_") and not extension))]
    return sorted(n for n in set(names) if n.isidentifier())


def is_extension_module(module):
    loader = getattr(module, "__loader__", None)
    if isinstance(loader, importlib.machinery.ExtensionFileLoader):
        return True
    path = text(getattr(module, "__file__", None)) or ""
    return path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def python_info():
    return {"version": sys.version.split()[0],
            "gil_enabled": bool(getattr(sys, "_is_gil_enabled", lambda: True)())}


def worker_main(options, modules):
    with open(options["worker"]) as f:
        state = json.load(f)
    channel = Channel(options["channel_fd"])
    # Processes a trial starts must not keep the channel open after this worker dies.
    os.set_inheritable(options["channel_fd"], False)
    # The crash detail. A sanitizer reports a fatal signal itself, with the C stack and a
    # SUMMARY line; faulthandler's handler would run first and make it abort mid-report.
    if "-fsanitize" not in (sysconfig.get_config_var("CFLAGS") or ""):
        faulthandler.enable()
    signal.signal(signal.SIGALRM, _alarm)
    Introspection(Run(channel, state), modules, options).run_all()
    channel.send({"t": "finished"})
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # the model is complete; the extension's teardown is not introspection's concern


# -- the supervisor ------------------------------------------------------------------------------

class WorkerEnd:
    def __init__(self, kind, pending=None, unit=None, crash_limit=MAX_CRASHES_PER_OBJECT, model_piece=True,
                 exit_code=None, signal_name=None, detail=None):
        self.kind = kind  # finished | crash | hang | time-limit
        self.pending = pending
        self.unit = unit
        self.crash_limit = crash_limit
        self.model_piece = model_piece
        self.exit_code = exit_code
        self.signal_name = signal_name
        self.detail = detail


def follow_worker(argv, state, journal, deadline, hang_grace):
    """Runs one worker to its end, taking in what it sends."""
    state_file = tempfile.NamedTemporaryFile("w", prefix="ftreview-introspect-", suffix=".json", delete=False)
    with state_file:
        json.dump(state, state_file)
    read_fd, write_fd = os.pipe()
    command = [sys.executable, os.path.abspath(__file__), "--worker", state_file.name,
               "--channel-fd", str(write_fd)] + argv
    # The worker's stdout goes to our stderr: what the extension prints must not mix with the model.
    proc = subprocess.Popen(command, pass_fds=(write_fd,), stdin=subprocess.DEVNULL,
                            stdout=sys.stderr.fileno(), stderr=subprocess.PIPE)
    os.close(write_fd)
    try:
        return watch(proc, read_fd, state, journal, deadline, hang_grace)
    finally:
        os.close(read_fd)
        proc.stderr.close()
        os.unlink(state_file.name)


def watch(proc, read_fd, state, journal, deadline, hang_grace):
    err_fd = proc.stderr.fileno()
    open_fds = {read_fd, err_fd}
    buffer, tail = b"", b""
    pending, pending_since, unit, finished = None, 0.0, None, False
    crash_limit, model_piece = MAX_CRASHES_PER_OBJECT, True
    last_message = time.monotonic()
    while open_fds:
        ready, _, _ = select.select(list(open_fds), [], [], 0.5)
        if not ready and proc.poll() is not None:
            break  # dead, and whatever it started keeps its stderr open
        for fd in ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                open_fds.discard(fd)
            elif fd == err_fd:
                sys.stderr.buffer.write(chunk)
                sys.stderr.flush()
                tail = (tail + chunk)[-STDERR_TAIL_BYTES:]
            else:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                last_message = time.monotonic()
                for line in lines:
                    message = json.loads(line)
                    kind = message["t"]
                    if kind == "step":
                        pending, pending_since = message, last_message
                    elif kind == "end":
                        pending = None
                    elif kind == "unit":
                        unit, pending = message["key"], None
                        crash_limit, model_piece = message["crash_limit"], message["model_piece"]
                    elif kind == "done":
                        state["units"][message["key"]] = message["result"]
                        unit = None
                    elif kind == "skipped":
                        journal["skipped"].setdefault(message["object"], message["error"])
                    elif kind == "finished":
                        finished = True
        now = time.monotonic()
        if now > deadline:
            proc.kill()
            proc.wait()
            return WorkerEnd("time-limit")
        stuck_for = now - (pending_since if pending else last_message)
        limit = pending["limit"] + hang_grace if pending else IDLE_SECONDS
        if not finished and stuck_for > limit:
            proc.kill()
            proc.wait()
            return WorkerEnd("hang", pending, unit, crash_limit, model_piece,
                             detail=f"no progress for {stuck_for:.0f} s (limit {limit:.0f} s); killed")
    code = proc.wait()
    if finished:
        return WorkerEnd("finished")
    signal_name, detail = death_of(code, tail.decode("utf-8", "replace"))
    return WorkerEnd("crash", pending, unit, crash_limit, model_piece, exit_code=None if code < 0 else code,
                     signal_name=signal_name, detail=detail)


def death_of(code, stderr):
    """(signal name, one-line detail) of a worker that died: from its exit status, TSan's
    report or faulthandler's header."""
    signal_name = None
    if code < 0:
        try:
            signal_name = signal.Signals(-code).name
        except ValueError:
            signal_name = f"signal {-code}"
    summary = re.search(r"SUMMARY: \w+Sanitizer: (\w+)[^\n]*", stderr)
    fatal = re.search(r"Fatal Python error: ([^\n]+)", stderr)
    if summary:
        signal_name = signal_name or SIGNAL_WORDS.get(summary.group(1))
        return signal_name, summary.group(0).strip()
    if fatal:
        signal_name = signal_name or SIGNAL_WORDS.get(fatal.group(1).strip())
        return signal_name, fatal.group(0).strip()
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    how = f"killed by {signal_name}" if signal_name else f"exited with status {code}"
    return signal_name, f"{how}: {lines[-1].strip()[:200]}" if lines else how


def record_end(end, state, journal, crashes):
    """Notes a worker that crashed or hung; returns whether a restart can get further."""
    call = end.pending["call"] if end.pending else None
    journal["crashed_trials"].append({
        "call": call, "outcome": end.kind, "signal": end.signal_name, "exit_code": end.exit_code,
        "detail": end.detail, "object": end.unit,
    })
    print(f"introspection: {end.kind} ({end.signal_name or end.exit_code or end.detail}) in "
          f"{end.unit or 'no object'}: {call or 'outside any call'}", file=sys.stderr, flush=True)
    if call:
        state["skip_calls"].append(call)
    if end.unit:
        crashes[end.unit] = crashes.get(end.unit, 0) + 1
        if not call or crashes[end.unit] >= end.crash_limit:
            state["skip_units"].append(end.unit)
            if end.model_piece:
                journal["skipped"].setdefault(end.unit, f"the interpreter died {crashes[end.unit]} time(s) while on it")
    return bool(call or end.unit)


def supervise(argv, options, modules):
    deadline = time.monotonic() + options["time_limit"]
    state = {"units": {}, "skip_calls": [], "skip_units": []}
    journal = {"skipped": {}, "crashed_trials": [], "restarts": 0, "restarts_exhausted": False,
               "time_limit_reached": False}
    crashes = {}
    while True:
        end = follow_worker(argv, state, journal, deadline, options["hang_grace"])
        if end.kind == "finished":
            break
        if end.kind == "time-limit":
            journal["time_limit_reached"] = True
            print(f"introspection: time limit of {options['time_limit']:.0f} s reached; the model is partial",
                  file=sys.stderr, flush=True)
            break
        if not record_end(end, state, journal, crashes):
            break
        if journal["restarts"] >= MAX_RESTARTS:
            journal["restarts_exhausted"] = True
            print(f"introspection: {MAX_RESTARTS} restarts used up; the model is partial", file=sys.stderr, flush=True)
            break
        journal["restarts"] += 1
    model = assemble(state["units"], journal, options, modules)
    summarize(model)
    json.dump(model, sys.stdout, indent=1, sort_keys=True)
    print()
    return 0


def assemble(units, journal, options, requested):
    """The model from the pieces the workers finished (all of them, or what a partial run got)."""
    modules = [dict(result, functions=[], types=[]) for key, result in units.items() if key.startswith("module ")]
    by_name = {m["name"]: m for m in modules}
    for name in requested:
        if name not in by_name:
            by_name[name] = {"name": name, "file": None, "extension": False, "functions": [], "types": [],
                             "import_error": "introspection stopped before importing it (see crashed_trials)"}
            modules.append(by_name[name])
    matched = set()
    for key, result in units.items():
        kind, _, rest = key.partition(" ")
        if kind in ("type", "function") and result:
            by_name[rest.split(" ")[0]][kind + "s"].append(result["entry"])
            matched |= {d["matched"] for d in result["discovered"] if d["matched"]}
        elif kind in ("attributes", "bases") and result:
            matched |= set(result["matched"])
    for module in modules:
        module["functions"].sort(key=lambda f: f["qualname"])
        module["types"].sort(key=lambda t: t["qualname"])
    hints = options["hints"]
    return {
        "format": FORMAT,
        "source": "introspection",
        "python": units.get("python") or python_info(),
        "modules": modules,
        "values": list(hints.get("values", [])) + CATALOGUE,
        "skipped": [{"object": name, "error": error} for name, error in sorted(journal["skipped"].items())],
        "crashed_trials": journal["crashed_trials"],
        "restarts": journal["restarts"],
        "restarts_exhausted": journal["restarts_exhausted"],
        "time_limit_reached": journal["time_limit_reached"],
        "unmatched_define_types": sorted(set(options["define_types"]) - matched),
    }


def summarize(model):
    types_found = sum(len(m["types"]) for m in model["modules"])
    functions = sum(len(m["functions"]) for m in model["modules"])
    print(f"introspection: {len(model['modules'])} modules, {types_found} types, {functions} functions; "
          f"{len(model['skipped'])} objects skipped, {len(model['crashed_trials'])} calls crashed or hung, "
          f"{model['restarts']} restarts", file=sys.stderr, flush=True)
    for name in model["unmatched_define_types"]:
        print(f"introspection: type {name} named by --define-types was not found", file=sys.stderr, flush=True)


OPTIONS = {
    "--hints-json": ("hints", json.loads),
    "--define-types": ("define_types", json.loads),
    "--time-limit": ("time_limit", float),
    "--hang-grace": ("hang_grace", float),
    "--worker": ("worker", str),
    "--channel-fd": ("channel_fd", int),
}


def parse_args(argv):
    """(options, modules, argv without the worker's own options)."""
    options = {"hints": {}, "define_types": [], "time_limit": DEFAULT_TIME_LIMIT,
               "hang_grace": HANG_GRACE_SECONDS, "worker": None, "channel_fd": None}
    modules, passed = [], []
    args = iter(argv)
    for arg in args:
        if arg in OPTIONS:
            key, parse = OPTIONS[arg]
            value = next(args, None)
            if value is None:
                raise UsageError(f"{arg} needs a value")
            try:
                options[key] = parse(value)
            except ValueError as exc:
                raise UsageError(f"{arg}: {exc}") from None
            if key not in ("worker", "channel_fd"):
                passed += [arg, value]
        elif arg.startswith("--"):
            raise UsageError(f"unknown option {arg}")
        else:
            modules.append(arg)
            passed.append(arg)
    if not modules:
        raise UsageError("no module to introspect")
    return options, modules, passed


def main(argv):
    if os.environ.get(FAIL_ENV):
        print(f"introspection failed on purpose: {FAIL_ENV} is set (a test hook)", file=sys.stderr)
        return 3
    try:
        options, modules, passed = parse_args(argv)
    except UsageError as exc:
        print(f"introspect.py: {exc}\nusage: introspect.py [--hints-json JSON] [--define-types JSON] "
              "[--time-limit SECS] [--hang-grace SECS] MODULE [MODULE ...]", file=sys.stderr)
        return 2
    if options["worker"]:
        return worker_main(options, modules)
    return supervise(passed, options, modules)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
