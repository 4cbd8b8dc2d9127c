"""pytest plugin loaded by ftreview (`-p ftreview_pytest_plugin`).

It marks test boundaries in the ThreadSanitizer log, so every report can be attributed to the
test that produced it, and it shapes the run to ftreview's schedule. Everything is driven by
environment variables, so the plugin does nothing a plain pytest run would notice:

  FTREVIEW_TEST_EVENTS    JSON lines file the events below are appended to
  FTREVIEW_TSAN_LOG       TSan's log_path prefix (the process's log is `<prefix>.<pid>`)
  FTREVIEW_WATCH_MODULES  packages whose import location the session event reports
  FTREVIEW_EXTENSION_MODULES  compiled modules (`pkg._ext`): calls into them are counted per
                          test (`sys.monitoring`, Python 3.12+)
  FTREVIEW_RECORD_CALLS   file to write the arguments of those calls to (api-calls.json, the
                          `ApiCalls` of ftreview-stress): see `CallRecorder`
  FTREVIEW_DEADLINE       UNIX time at which no further test starts (the phase's budget share)
  FTREVIEW_TEST_TIMEOUT   seconds a single test may take before it is stopped as slow
  FTREVIEW_SKIP_BENCHMARKS=1  deselect tests that use the `benchmark` fixture or marker
  FTREVIEW_SELECTION      JSON file {"order": [nodeid...], "exclude": [nodeid...]}: run the
                          ordered tests first, leave out the excluded ones

Events, one JSON object per line, each with the process's pid:

  {"event": "start", "nodeid": ..., "offset": N}        (a crash or hang leaves no "test" line)
  {"event": "test", "nodeid": ..., "start": N, "end": M, "outcome": ..., "ext_calls": K}
  {"event": "collected", "count": N}                    (before deselection)
  {"event": "deselected", "reason": ..., "count": N}
  {"event": "collect_error", "nodeid": ..., "error": FIRST_ERROR_LINE}
  {"event": "slow", "nodeid": ..., "seconds": S}
  {"event": "stopped", "reason": ..., "remaining": N}
  {"event": "session", "exitstatus": N, "modules": {name: file}}

A report whose byte offset falls inside a test's [start, end) range of the process's log came
from that test. Threads that outlive a test (or pytest-run-parallel's workers) still report
inside the range of the test that was running, which is the best available attribution.
"""

import ast
import inspect
import json
import linecache
import os
import pickle
import signal
import sys
import threading
import time
import types

import pytest

_LOCK = threading.Lock()
_MONITORING_TOOL = 4  # sys.monitoring ids 0-2 and 5 are named by CPython; 3 and 4 are free


def _env_list(name):
    return [m for m in os.environ.get(name, "").split(",") if m]


def _log_file():
    prefix = os.environ.get("FTREVIEW_TSAN_LOG")
    return f"{prefix}.{os.getpid()}" if prefix else None


def _offset():
    path = _log_file()
    try:
        return os.path.getsize(path) if path else 0
    except OSError:
        return 0


def _emit(record):
    path = os.environ.get("FTREVIEW_TEST_EVENTS")
    if not path:
        return
    record["pid"] = os.getpid()
    line = json.dumps(record) + "\n"
    with _LOCK, open(path, "a", encoding="utf-8") as out:
        out.write(line)


class ExtensionCalls:
    """Counts calls into the extension's compiled modules with sys.monitoring CALL events, and
    hands them to a `CallRecorder` when one is given.

    A call site that calls something else is disabled (sys.monitoring.DISABLE) until the next
    test restarts the events, which keeps the cost to the first visit of each site per test.
    Sites that reach the extension stay enabled: they are counted on every call. Once such a
    site needs no more reading, calls of the same callable there from the main thread are only
    counted for a while (`_Settled`), until the next test. Other threads write nothing shared
    but the first count of a test: a write to an object they share would order them through
    its lock and hide their races from TSan (pytest-run-parallel runs every test in threads),
    so their calls count as one.
    """

    def __init__(self, modules, record_path=None):
        self.full = set(modules)
        self.short = {m.rsplit(".", 1)[-1] for m in modules}
        self.count = 0
        self.known = {}
        self.settled = {}  # (id(code), offset) -> _Settled, the main thread's only
        self.main = threading.main_thread().ident
        self.recorder = None
        monitoring = getattr(sys, "monitoring", None)
        self.active = False
        if monitoring is None or not modules:
            return
        try:
            monitoring.use_tool_id(_MONITORING_TOOL, "ftreview")
        except ValueError:
            return  # another tool holds the id: no counts, everything else still works
        monitoring.register_callback(_MONITORING_TOOL, monitoring.events.CALL, self.on_call)
        monitoring.set_events(_MONITORING_TOOL, monitoring.events.CALL)
        self.active = True
        if record_path:
            self.recorder = CallRecorder(record_path, self)

    def restart(self, nodeid):
        """A new test: counts from 0, and every site is read again (another test may pass
        other arguments at the same site)."""
        self.count = 0
        self.settled.clear()
        if self.recorder is not None:
            self.recorder.new_test(nodeid)
        if self.active:
            sys.monitoring.restart_events()

    def on_call(self, code, offset, callable_, arg0):
        site = (id(code), offset)
        main = threading.get_ident() == self.main
        settled = self.settled.get(site) if main else None
        if settled is not None and settled.skips(code, callable_):
            self.count += 1
            if self.recorder is not None:
                self.recorder.count(settled.entry)
            return None
        try:
            reaches = self.reaches_extension(callable_)
        except Exception:  # noqa: BLE001 - foreign objects may raise anything
            reaches = False
        if not reaches:
            return sys.monitoring.DISABLE
        if not main:
            if self.count == 0:
                self.count = 1
            return None
        self.count += 1
        done, entry = (True, None) if self.recorder is None else self.recorder.record(code, offset, callable_, arg0)
        if not done:
            self.settled.pop(site, None)
        elif _lives_with_the_run(callable_):
            again = settled is not None and settled.callable is callable_
            self.settled[site] = _Settled(code, callable_, entry, settled.gap * 2 if again else _Settled.FIRST_GAP)
        return None

    def reaches_extension(self, obj):
        owner = _owner_of(obj)
        if owner is None:
            return False
        hit = self.known.get(id(owner))
        if hit is not None and hit[0] is owner:
            return hit[1]
        if isinstance(owner, type):
            result = any(self.defines(base) for base in owner.__mro__)
        else:
            name = getattr(owner, "__name__", None)
            result = name in self.full or name in self.short
        self.known[id(owner)] = (owner, result)  # types and modules live as long as the run
        return result

    def defines(self, cls):
        """Whether the extension defines this type: its `__module__` names an extension module,
        in full or by its last part (C types often carry a short `tp_name`, `_ext.Proxy`)."""
        module = type.__dict__["__module__"].__get__(cls)
        return isinstance(module, str) and (module in self.full or module in self.short)

    def extension_type(self, cls):
        """The extension (or a class of the package built on it) defines this type."""
        try:
            return self.reaches_extension(cls)
        except Exception:  # noqa: BLE001 - foreign types may raise anything
            return False


class _Settled:
    """A site whose next `remaining` calls of `callable` are only counted. The gap doubles
    each time a read there finds nothing new: a loop may change the mode in its outer loop."""

    __slots__ = ("code", "callable", "entry", "gap", "remaining")
    FIRST_GAP = 16

    def __init__(self, code, callable_, entry, gap):
        self.code = code
        self.callable = callable_
        self.entry = entry  # the recorder's entry of the callable, or None
        self.gap = gap
        self.remaining = gap

    def skips(self, code, callable_):
        if self.remaining == 0 or self.callable is not callable_ or self.code is not code:
            return False
        self.remaining -= 1
        return True


def _lives_with_the_run(callable_):
    """Types, descriptors and module functions: keeping them costs a test nothing, where a
    method bound to an object would keep the object alive."""
    if isinstance(callable_, type) or isinstance(getattr(callable_, "__objclass__", None), type):
        return True
    return isinstance(getattr(callable_, "__self__", None), types.ModuleType)


def _owner_of(obj):
    """What decides whether a call reaches C code: the type a constructor or descriptor
    belongs to, or the module or object a builtin is bound to."""
    if isinstance(obj, type):
        return obj
    owner = getattr(obj, "__objclass__", None)  # method, wrapper and getset descriptors
    if isinstance(owner, type):
        return owner
    if type(obj).__name__ in ("builtin_function_or_method", "method-wrapper"):
        bound = getattr(obj, "__self__", None)
        return bound if type(bound).__name__ == "module" else type(bound)
    return None


class _Unresolved(Exception):
    """An argument whose value cannot be had without running code."""


class CallRecorder:
    """Records what the suite passes to the extension: per callable, the first call of each
    distinct argument shape, for the stress phase to call the same way (modes, options,
    argument types a catalogue of trial values would not guess).

    A CALL event gives the callable and its first argument only. The others are read from the
    call's source: the code object and instruction offset give its position
    (`co_positions()`), its AST gives the argument expressions, and those that need no code to
    run (constants, names, attributes found without descriptors, literals, small arithmetic on
    constants) are evaluated in the caller's frame. A call with any other argument counts as
    unresolved. Values are kept as literals when they have one, as the extension's objects by
    type (and a pickled sample when no constructor call of the type was seen), else by type.

    Only the main thread records (tests run there; a lock shared with threads a test starts
    would order them and hide their races from TSan), a few calls per callable, and nothing
    after a session budget.
    """

    MAX_SHAPES = 8  # distinct argument shapes kept per callable
    MAX_READ = 64  # calls per callable whose arguments are read
    SITE_REPEATS = 4  # reads of a call site in a test that found no new shape, before it settles
    BUDGET = 4000  # calls read in the session
    LITERAL_ITEMS = 16  # container elements with a literal form
    LITERAL_CHARS = 256  # string and bytes length with a literal form
    REPEATED_LIMIT = 1 << 22  # `b'x' * N` form up to this length
    PICKLE_BYTES = 4096
    WRITE_EVERY = 2.0  # seconds between rewrites of the file during the session

    def __init__(self, path, calls):
        self.path = path
        self.calls = calls
        self.main = threading.main_thread().ident
        self.callables = {}  # qualname -> entry (the RecordedCallable JSON)
        self.shapes = {}  # qualname -> set of shapes kept
        self.sites = {}  # (id(code), offset) -> (code, ast.Call or None)
        self.repeats = {}  # (id(code), offset) -> reads there in this test that found no new shape
        self.positions = {}  # id(code) -> (code, list of positions)
        self.constructed = set()  # type keys whose constructor call was seen
        self.samples = {}  # type key -> pickle literal or None
        self.seen = 0
        self.read = 0
        self.test = None
        self.dirty = True
        self.written = 0.0

    # -- recording ----------------------------------------------------------------------

    def record(self, code, offset, callable_, arg0):
        """Counts a call and reads its arguments. Returns whether its site needs no more
        reading, and the callable's entry for the calls counted there from then on."""
        self.seen += 1
        try:
            return self._record(code, offset, callable_, arg0)
        except _SlowTest:
            raise
        except Exception:  # noqa: BLE001 - recording must never break a test
            return True, None

    def new_test(self, nodeid):
        self.test = nodeid
        self.repeats.clear()

    def count(self, entry):
        """A call at a settled site."""
        self.seen += 1
        if entry is not None:
            entry["calls"] += 1

    def _record(self, code, offset, callable_, arg0):
        entry = self.entry(callable_)
        if entry is None:
            return True, None
        entry["calls"] += 1
        if self.read >= self.BUDGET or len(entry["arg_sets"]) >= self.MAX_SHAPES or entry["read"] >= self.MAX_READ:
            return True, entry
        entry["read"] += 1
        self.read += 1
        frame = sys._getframe(3)  # _record <- record <- on_call <- the calling frame
        if frame.f_code is not code:
            entry["unresolved"] += 1
            return False, entry
        try:
            args, keywords = self.arguments(code, offset, frame, arg0, entry["receiver_first"])
        except _Unresolved:
            entry["unresolved"] += 1
            return self.call_at(code, offset) is None, entry
        described = [self.describe_value(v) for v in args]
        named = [{"name": k, "value": self.describe_value(v)} for k, v in keywords]
        shape = (tuple(_shape(d) for d in described), tuple((k["name"], _shape(k["value"])) for k in named))
        shapes = self.shapes[entry["qualname"]]
        if shape not in shapes:
            shapes.add(shape)
            entry["arg_sets"].append({"args": described, "keywords": named, "test": self.test})
            self.dirty = True
            return False, entry
        repeats = self.repeats.get((id(code), offset), 0) + 1
        self.repeats[(id(code), offset)] = repeats
        return repeats >= self.SITE_REPEATS, entry

    def entry(self, callable_):
        """The callable's RecordedCallable entry (with what reading needs), None when it has no name."""
        target = self.describe_callable(callable_)
        if target is None:
            return None
        qualname, kind, receiver_first = target
        if kind == "constructor":
            self.constructed.add(qualname)
        entry = self.callables.get(qualname)
        if entry is None:
            entry = {"qualname": qualname, "kind": kind, "calls": 0, "unresolved": 0, "arg_sets": [],
                     "read": 0, "receiver_first": receiver_first}
            self.callables[qualname] = entry
            self.shapes[qualname] = set()
        return entry

    def describe_callable(self, obj):
        """(qualname, kind, whether the first argument is the receiver) of a callable that
        reaches the extension, named as introspection keys types (`__module__.__qualname__`)."""
        if isinstance(obj, type):
            return _type_key(obj), "constructor", False
        owner = getattr(obj, "__objclass__", None)
        name = getattr(obj, "__name__", None)
        if not isinstance(name, str):
            return None
        if isinstance(owner, type):  # a method descriptor: called with its object first
            return f"{_type_key(owner)}.{name}", "method", True
        bound = getattr(obj, "__self__", None)
        if isinstance(bound, types.ModuleType):
            return f"{bound.__name__}.{name}", "function", False
        if isinstance(bound, type):  # a class method
            return f"{_type_key(bound)}.{name}", "method", False
        defining = next((k for k in type(bound).__mro__ if name in vars(k)), type(bound))
        return f"{_type_key(defining)}.{name}", "method", False

    def arguments(self, code, offset, frame, arg0, receiver_first):
        """The positional and keyword argument values of the call at `offset`."""
        call = self.call_at(code, offset)
        if call is None:
            raise _Unresolved()
        nodes = list(call.args)
        if receiver_first and not self.unbound_form(call, frame):
            nodes = [None] + nodes  # `obj.method(...)`: the receiver is arg0, not written
        values = []
        for index, node in enumerate(nodes):
            if isinstance(node, ast.Starred):
                spread = _safe_value(node.value, frame)
                if type(spread) not in (tuple, list):
                    raise _Unresolved()
                values.extend(spread)
            elif index == 0:
                # The event gives the first argument itself, whatever its expression; a plain
                # name must be that object, or the source is not this call's (an edited file).
                if isinstance(node, ast.Name) and _safe_value(node, frame) is not arg0:
                    raise _Unresolved()
                values.append(arg0)
            else:
                values.append(_safe_value(node, frame))
        keywords = []
        for keyword in call.keywords:
            if keyword.arg is None:
                spread = _safe_value(keyword.value, frame)
                if type(spread) is not dict or not all(type(k) is str for k in spread):
                    raise _Unresolved()
                keywords.extend(spread.items())
            else:
                keywords.append((keyword.arg, _safe_value(keyword.value, frame)))
        if (arg0 is sys.monitoring.MISSING) != (not values):
            raise _Unresolved()  # the source does not match this call
        return (values[1:] if receiver_first else values), keywords

    def unbound_form(self, call, frame):
        """`Type.method(obj, ...)`: the receiver is written as the first argument."""
        if not isinstance(call.func, ast.Attribute):
            return False
        try:
            return isinstance(_safe_value(call.func.value, frame), type)
        except _Unresolved:
            return False

    def call_at(self, code, offset):
        key = (id(code), offset)
        site = self.sites.get(key)
        if site is None or site[0] is not code:
            site = (code, self.parse_call(code, offset))
            self.sites[key] = site
        return site[1]

    def parse_call(self, code, offset):
        known = self.positions.get(id(code))
        if known is None or known[0] is not code:
            known = (code, list(code.co_positions()))
            self.positions[id(code)] = known
        index = offset // 2
        if index >= len(known[1]):
            return None
        start_line, end_line, start_col, end_col = known[1][index]
        if None in (start_line, end_line, start_col, end_col):
            return None
        lines = linecache.getlines(code.co_filename)
        if end_line > len(lines):
            return None
        # Columns count UTF-8 bytes.
        chunk = [line.encode("utf-8") for line in lines[start_line - 1:end_line]]
        chunk[-1] = chunk[-1][:end_col]
        chunk[0] = chunk[0][start_col:]
        try:
            tree = ast.parse(b"".join(chunk).decode("utf-8"), mode="eval")
        except (SyntaxError, ValueError, UnicodeDecodeError):
            return None
        return tree.body if isinstance(tree.body, ast.Call) else None

    # -- values -------------------------------------------------------------------------

    def describe_value(self, value):
        """A RecordedValue: a literal, one of the extension's objects, or a type."""
        kind = type(value)
        type_name = _type_key(kind)
        source = _literal(value)
        if source is not None:
            return {"kind": "literal", "type_name": type_name, "source": source}
        if self.calls.extension_type(kind):
            sample = None if type_name in self.constructed else self.sample(type_name, value)
            return {"kind": "instance", "type_name": type_name, "pickle": sample}
        return {"kind": "type-only", "type_name": type_name, "len": _builtin_len(value)}

    def sample(self, type_name, value):
        """A bytes literal of the pickled object, once per type (unpicklable: None)."""
        if type_name not in self.samples:
            try:
                data = pickle.dumps(value, protocol=4)
                self.samples[type_name] = repr(data) if len(data) <= self.PICKLE_BYTES else None
            except _SlowTest:
                raise
            except Exception:  # noqa: BLE001 - anything may refuse to pickle
                self.samples[type_name] = None
        return self.samples[type_name]

    # -- output -------------------------------------------------------------------------

    def test_done(self):
        if self.dirty and time.monotonic() - self.written >= self.WRITE_EVERY:
            self.write()

    def write(self):
        """Rewrites the file atomically: the stress phase may read it while the suite runs."""
        callables = [
            {k: v for k, v in entry.items() if k not in ("read", "receiver_first")}
            for _, entry in sorted(self.callables.items())
        ]
        document = {
            "format": API_CALLS_FORMAT,
            "calls_seen": self.seen,
            "budget_reached": self.read >= self.BUDGET,
            "callables": callables,
        }
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as out:
                json.dump(document, out, indent=1)
            os.replace(tmp, self.path)
        except OSError:
            return
        self.dirty = False
        self.written = time.monotonic()


API_CALLS_FORMAT = 1


def _type_key(cls):
    """`__module__.__qualname__`, read from the type itself (a class attribute named
    `__module__` on an extension type can shadow it)."""
    module = type.__dict__["__module__"].__get__(cls)
    qualname = type.__dict__["__qualname__"].__get__(cls)
    return f"{module}.{qualname}" if isinstance(module, str) else qualname


def _safe_value(node, frame):
    """The value of an expression that runs no code, or _Unresolved."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        for scope in (frame.f_locals, frame.f_globals, frame.f_builtins):
            try:
                return scope[node.id]
            except KeyError:
                continue
        raise _Unresolved()
    if isinstance(node, ast.Attribute):
        return _static_attribute(_safe_value(node.value, frame), node.attr)
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        if len(node.elts) > CallRecorder.LITERAL_ITEMS or any(isinstance(e, ast.Starred) for e in node.elts):
            raise _Unresolved()
        items = [_safe_value(e, frame) for e in node.elts]
        return {ast.Tuple: tuple, ast.List: list, ast.Set: set}[type(node)](items)
    if isinstance(node, ast.Dict):
        if len(node.keys) > CallRecorder.LITERAL_ITEMS or None in node.keys:
            raise _Unresolved()
        return {_safe_value(k, frame): _safe_value(v, frame) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.UnaryOp):
        operand = _safe_value(node.operand, frame)
        if type(operand) in (int, float, complex, bool):
            return _UNARY[type(node.op)](operand)
        raise _Unresolved()
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _arithmetic(node.op, _safe_value(node.left, frame), _safe_value(node.right, frame))
    if isinstance(node, ast.Call) and not node.keywords:
        return _builtin_construction(_safe_value(node.func, frame), [_safe_value(a, frame) for a in node.args])
    raise _Unresolved()


# Builtin types whose construction from builtin values runs no code of anyone else.
_PURE_CONSTRUCTORS = (bytes, bytearray, range, str, int, float, complex, bool, tuple, list, set, frozenset)
_PURE_VALUES = (int, float, complex, bool, str, bytes, bytearray, tuple, list, range)


def _builtin_construction(kind, args):
    """`bytearray(b'..')`, `range(5)`, `list(range(3))`: builtins applied to builtin values,
    only where the result is small."""
    if kind not in _PURE_CONSTRUCTORS or len(args) > 3 or any(type(a) not in _PURE_VALUES for a in args):
        raise _Unresolved()
    limit = CallRecorder.REPEATED_LIMIT
    if any((type(a) is int and kind in (bytes, bytearray) and a > limit) or
           (type(a) is range and len(a) > limit) for a in args):
        raise _Unresolved()
    try:
        return kind(*args)
    except (TypeError, ValueError, OverflowError):
        raise _Unresolved() from None


_UNARY = {ast.USub: lambda v: -v, ast.UAdd: lambda v: +v, ast.Invert: lambda v: ~v, ast.Not: lambda v: not v}
_BINARY = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
           ast.Pow: lambda a, b: a ** b}
_NUMBERS = (int, float)
_SEQUENCES = (str, bytes, tuple, list)


def _arithmetic(op, left, right):
    """Arithmetic of builtin numbers and sequence repetition, only where the result is small."""
    kinds = (type(left), type(right))
    if all(k in _NUMBERS for k in kinds):
        if type(op) is ast.Pow and (abs(right) > 64 or abs(left) > 1 << 32):
            raise _Unresolved()
        return _BINARY[type(op)](left, right)
    if type(op) is ast.Mult and set(kinds) & set(_SEQUENCES) and int in kinds:
        sequence, times = (left, right) if type(right) is int else (right, left)
        if type(sequence) in _SEQUENCES and len(sequence) * max(times, 0) <= CallRecorder.REPEATED_LIMIT:
            return sequence * times
    if type(op) is ast.Add and kinds[0] is kinds[1] and kinds[0] in _SEQUENCES:
        if len(left) + len(right) <= CallRecorder.REPEATED_LIMIT:
            return left + right
    raise _Unresolved()


def _static_attribute(obj, name):
    """An attribute found without running code: a module's global, a class's or an
    instance's plain value (no descriptor, no `__getattr__`)."""
    if isinstance(obj, types.ModuleType):
        namespace = vars(obj)
        if name in namespace:
            return namespace[name]
        raise _Unresolved()
    try:
        value = inspect.getattr_static(obj, name)
    except AttributeError:
        raise _Unresolved() from None
    if hasattr(type(value), "__get__"):
        raise _Unresolved()
    return value


def _literal(value, depth=0):
    """Python source that rebuilds `value`, for builtin values of modest size; else None."""
    kind = type(value)
    if value is None or value is Ellipsis or kind is bool:
        return repr(value)
    if kind is int:
        return repr(value) if abs(value) < 10**40 else None
    if kind in (float, complex):
        text = repr(value)
        return text if "nan" not in text and "inf" not in text else f"{kind.__name__}({text!r})"
    if kind in (str, bytes):
        return _text_literal(value)
    if kind is bytearray:
        inner = _text_literal(bytes(value))
        return f"bytearray({inner})" if inner is not None else None
    if kind is range:
        return repr(value)
    if kind in (tuple, list, set, frozenset, dict) and depth < 3 and len(value) <= CallRecorder.LITERAL_ITEMS:
        items = value.items() if kind is dict else value
        parts = []
        for item in items:
            pair = item if kind is dict else (item,)
            sources = [_literal(v, depth + 1) for v in pair]
            if None in sources:
                return None
            parts.append(": ".join(sources))
        body = ", ".join(parts)
        if kind is tuple:
            return f"({body},)" if len(parts) == 1 else f"({body})"
        if kind is list:
            return f"[{body}]"
        if kind is dict:
            return f"{{{body}}}"
        text = f"{{{body}}}" if parts else "set()"
        return text if kind is set else f"frozenset({text if parts else ''})"
    return None


def _text_literal(value):
    """A short string or bytes as is; a long one as a short piece repeated, when it is one."""
    if len(value) <= CallRecorder.LITERAL_CHARS:
        return repr(value)
    if len(value) > CallRecorder.REPEATED_LIMIT:
        return None
    for period in range(1, 17):
        times, rest = divmod(len(value), period)
        piece = value[:period]
        if rest == 0 and piece * times == value:
            return f"{piece!r} * {times}"
    return None


def _builtin_len(value):
    """The length of a builtin sized value (no `__len__` of anything else runs)."""
    if type(value) in (str, bytes, bytearray, tuple, list, dict, set, frozenset):
        return len(value)
    if type(value) is memoryview:
        return value.nbytes
    return None


def _shape(described):
    """What tells two argument values apart for the stress phase: short strings, booleans and
    None by value (modes, options), numbers by type, the rest by type and rough size."""
    kind = described["kind"]
    type_name = described["type_name"]
    if kind == "literal":
        source = described["source"]
        if type_name in ("builtins.int", "builtins.float", "builtins.complex"):
            return (type_name,)
        if type_name in ("builtins.bool", "builtins.NoneType") or (type_name == "builtins.str" and len(source) <= 34):
            return (type_name, source)
        return (type_name, _size_class(len(source)))
    if kind == "type-only":
        return (type_name, _size_class(described["len"] or 0))
    return (type_name,)


def _size_class(n):
    return 0 if n < 64 else 1 if n < 4096 else 2


class Session:
    def __init__(self):
        self.calls = ExtensionCalls(_env_list("FTREVIEW_EXTENSION_MODULES"), os.environ.get("FTREVIEW_RECORD_CALLS"))
        deadline = os.environ.get("FTREVIEW_DEADLINE")
        self.deadline = float(deadline) if deadline else None
        timeout = os.environ.get("FTREVIEW_TEST_TIMEOUT")
        self.timeout = float(timeout) if timeout else None
        self.stopped = False


_SESSION = None


def pytest_configure(config):
    global _SESSION
    _SESSION = Session()


def pytest_collection_modifyitems(session, config, items):
    _emit({"event": "collected", "count": len(items)})
    if os.environ.get("FTREVIEW_SKIP_BENCHMARKS") == "1":
        kept = [i for i in items if not _is_benchmark(i)]
        _deselect(config, items, kept, "benchmark tests (the benchmark fixture or marker)")
    selection = os.environ.get("FTREVIEW_SELECTION")
    if selection:
        with open(selection, encoding="utf-8") as f:
            wanted = json.load(f)
        rank = {nodeid: i for i, nodeid in enumerate(wanted.get("order", []))}
        excluded = set(wanted.get("exclude", []))
        kept = [i for i in items if i.nodeid not in excluded]
        kept.sort(key=lambda i: rank.get(i.nodeid, len(rank)))
        _deselect(config, items, kept, "tests that never called into the extension")


def _is_benchmark(item):
    return "benchmark" in getattr(item, "fixturenames", ()) or item.get_closest_marker("benchmark") is not None


def _deselect(config, items, kept, reason):
    kept_ids = {id(i) for i in kept}
    dropped = [i for i in items if id(i) not in kept_ids]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        _emit({"event": "deselected", "reason": reason, "count": len(dropped)})
    items[:] = kept


def pytest_collectreport(report):
    if report.failed:
        _emit({"event": "collect_error", "nodeid": report.nodeid, "error": _first_error(report)})


def _first_error(report):
    text = str(report.longrepr)
    errors = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    return (errors[-1] if errors else text.strip().splitlines()[-1] if text.strip() else "")[:300]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    state = _SESSION
    if state.deadline is not None and time.time() >= state.deadline and not state.stopped:
        state.stopped = True
        remaining = len(item.session.items) - item.session.items.index(item)
        _emit({"event": "stopped", "reason": "the phase's share of the time budget ran out", "remaining": remaining})
        item.session.shouldstop = "ftreview: the phase's share of the time budget ran out"
    start = _offset()
    _emit({"event": "start", "nodeid": item.nodeid, "offset": start})
    outcomes = []
    item._ftreview_outcomes = outcomes
    state.calls.restart(item.nodeid)
    recorder = state.calls.recorder
    began = time.monotonic()
    with _time_limit(state.timeout, item):
        yield
    if recorder is not None:
        recorder.test_done()
    _emit({
        "event": "test",
        "nodeid": item.nodeid,
        "start": start,
        "end": _offset(),
        "outcome": _summarize(outcomes),
        "ext_calls": state.calls.count,
        "seconds": round(time.monotonic() - began, 3),
    })


class _SlowTest(Exception):
    pass


class _time_limit:
    """Stops a test that runs longer than `seconds` by raising in the main thread (Python-level
    code returns to the interpreter often; a test stuck inside C code is left to the phase's
    own timeout)."""

    def __init__(self, seconds, item):
        self.seconds, self.item = seconds, item
        self.armed = bool(seconds) and threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")

    def __enter__(self):
        if self.armed:
            self.previous = signal.signal(signal.SIGALRM, self._expire) or signal.SIG_DFL
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def _expire(self, signum, frame):
        _emit({"event": "slow", "nodeid": self.item.nodeid, "seconds": self.seconds})
        raise _SlowTest(f"ftreview stopped this test after {self.seconds:g} s (FTREVIEW_TEST_TIMEOUT)")

    def __exit__(self, *exc):
        if self.armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)
        return False


def _summarize(outcomes):
    if not outcomes:
        return "unknown"
    if any(outcome == "failed" for _, outcome in outcomes):
        return "failed"
    if any(outcome == "skipped" for _, outcome in outcomes):
        return "skipped"
    return "passed"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    outcomes = getattr(item, "_ftreview_outcomes", None)
    if outcomes is not None:
        outcomes.append((report.when, report.outcome))


def pytest_sessionfinish(session, exitstatus):
    if _SESSION is not None and _SESSION.calls.recorder is not None:
        _SESSION.calls.recorder.write()
    # Which files the target's packages were imported from: tests that import the package
    # from the source tree instead of the instrumented install test nothing native.
    watched = _env_list("FTREVIEW_WATCH_MODULES")
    modules = {}
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] in watched:
            file = getattr(module, "__file__", None)
            modules[name] = file if isinstance(file, str) else None
    _emit({"event": "session", "exitstatus": int(exitstatus), "modules": modules})
