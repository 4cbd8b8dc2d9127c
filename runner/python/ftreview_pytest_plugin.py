"""pytest plugin loaded by ftreview (`-p ftreview_pytest_plugin`).

It marks test boundaries in the ThreadSanitizer log, so every report can be attributed to the
test that produced it, and it shapes the run to ftreview's schedule. Everything is driven by
environment variables, so the plugin does nothing a plain pytest run would notice:

  FTREVIEW_TEST_EVENTS    JSON lines file the events below are appended to
  FTREVIEW_TSAN_LOG       TSan's log_path prefix (the process's log is `<prefix>.<pid>`)
  FTREVIEW_WATCH_MODULES  packages whose import location the session event reports
  FTREVIEW_EXTENSION_MODULES  compiled modules (`pkg._ext`): calls into them are counted per
                          test (`sys.monitoring`, Python 3.12+)
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

import json
import os
import signal
import sys
import threading
import time

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
    """Counts calls into the extension's compiled modules with sys.monitoring CALL events.

    A call site that calls something else is disabled (sys.monitoring.DISABLE) until the next
    test restarts the events, which keeps the cost to the first visit of each site per test.
    """

    def __init__(self, modules):
        self.full = set(modules)
        self.short = {m.rsplit(".", 1)[-1] for m in modules}
        self.count = 0
        self.known = {}
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

    def restart(self):
        self.count = 0
        if self.active:
            sys.monitoring.restart_events()

    def on_call(self, code, offset, callable_, arg0):
        try:
            reaches = self.reaches_extension(callable_)
        except Exception:  # noqa: BLE001 - foreign objects may raise anything
            reaches = False
        if reaches:
            self.count += 1
            return None
        return sys.monitoring.DISABLE

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


class Session:
    def __init__(self):
        self.calls = ExtensionCalls(_env_list("FTREVIEW_EXTENSION_MODULES"))
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
    state.calls.restart()
    began = time.monotonic()
    with _time_limit(state.timeout, item):
        yield
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
    # Which files the target's packages were imported from: tests that import the package
    # from the source tree instead of the instrumented install test nothing native.
    watched = _env_list("FTREVIEW_WATCH_MODULES")
    modules = {}
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] in watched:
            file = getattr(module, "__file__", None)
            modules[name] = file if isinstance(file, str) else None
    _emit({"event": "session", "exitstatus": int(exitstatus), "modules": modules})
