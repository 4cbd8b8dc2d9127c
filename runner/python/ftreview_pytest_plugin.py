"""pytest plugin loaded by ftreview (`-p ftreview_pytest_plugin`): marks test boundaries in the
ThreadSanitizer log so every report can be attributed to the test that produced it.

TSan writes each report synchronously to `<log_path>.<pid>`. Before and after each test the
plugin records the size of this process's log file; a report whose byte offset falls inside a
test's [start, end) range came from that test. One JSON object per line goes to
$FTREVIEW_TEST_EVENTS:

  {"event": "start", "nodeid": ..., "pid": ..., "offset": N}  (a crash or hang leaves no "test" line)
  {"event": "test", "nodeid": ..., "pid": ..., "log": ..., "start": N, "end": M, "outcome": ...}
  {"event": "collected", "count": N, "pid": ...}
  {"event": "session", "pid": ..., "collected": N, "modules": {name: file}}

Threads that outlive a test (or pytest-run-parallel's workers) still report inside the range of
the test that was running, which is the best available attribution.
"""

import json
import os
import sys
import threading

import pytest

_LOCK = threading.Lock()


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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    start = _offset()
    _emit({"event": "start", "nodeid": item.nodeid, "offset": start})
    outcomes = []
    item._ftreview_outcomes = outcomes
    yield
    _emit({
        "event": "test",
        "nodeid": item.nodeid,
        "log": _log_file(),
        "start": start,
        "end": _offset(),
        "outcome": _summarize(outcomes),
    })


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


def pytest_collection_finish(session):
    _emit({"event": "collected", "count": len(session.items)})


def pytest_sessionfinish(session, exitstatus):
    # Which files the target's packages were imported from: tests that import the package
    # from the source tree instead of the instrumented install test nothing native.
    watched = [m for m in os.environ.get("FTREVIEW_WATCH_MODULES", "").split(",") if m]
    modules = {}
    for name, module in list(sys.modules.items()):
        top = name.split(".")[0]
        if top in watched or name in watched:
            modules[name] = getattr(module, "__file__", None)
    _emit({"event": "session", "exitstatus": int(exitstatus), "modules": modules})
