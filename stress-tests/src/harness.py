

# ---- ftreview scenario harness (same in every generated scenario) ----------
import gc
import json
import os
import random
import subprocess
import sys
import threading
import time
import traceback

OUTCOME_FORMAT = 1
MAX_ITEMS_CHECKED = 10000


def _touch(obj):
    """Reads an object derived from a shared one (a view, a proxy, a copy)."""
    repr(obj)
    if hasattr(type(obj), "__len__"):
        len(obj)
    if hasattr(type(obj), "__iter__"):
        list(itertools.islice(iter(obj), 256))


def _describe(exc):
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return text


class _Log:
    """Per-thread record of exceptions and anomalies: no lock, so the harness adds no
    synchronisation between workers (a lock would hide races from TSan)."""

    def __init__(self):
        self.exceptions = {}
        self.anomalies = {}
        self.iterations = 0

    def exception(self, label, exc):
        key = (label, type(exc).__name__)
        entry = self.exceptions.setdefault(key, [0, _describe(exc)])
        entry[0] += 1

    def anomaly(self, kind, label, detail):
        entry = self.anomalies.setdefault((kind, label), [0, detail])
        entry[0] += 1

    def call(self, label, op, *args):
        try:
            op(*args)
        except SystemError as exc:  # a C function broke the C-API contract: corruption
            self.anomaly("internal-error", label, f"SystemError: {_describe(exc)}")
        except Exception as exc:  # noqa: BLE001 - workers record and go on
            self.exception(label, exc)


def _merge(logs):
    exceptions, anomalies = {}, {}
    for log in logs:
        for key, (count, message) in log.exceptions.items():
            exceptions.setdefault(key, [0, message])[0] += count
        for key, (count, detail) in log.anomalies.items():
            anomalies.setdefault(key, [0, detail])[0] += count
    return (
        [{"op": op, "type": kind, "message": msg, "count": n} for (op, kind), (n, msg) in sorted(exceptions.items())],
        [{"kind": kind, "op": op, "detail": detail, "count": n} for (kind, op), (n, detail) in sorted(anomalies.items())],
    )


def _write_outcome(status, started, logs=(), error=None, budget_exhausted=False, first_call_processes=0):
    path = os.environ.get("FTREVIEW_OUTCOME")
    if not path:
        return
    exceptions, anomalies = _merge(logs)
    outcome = {
        "format": OUTCOME_FORMAT,
        "scenario": SCENARIO["name"],
        "kind": SCENARIO["kind"],
        "status": status,
        "seed": SCENARIO["seed"],
        "threads": SCENARIO["threads"],
        "iterations": SCENARIO["iterations"],
        "iterations_done": sum(log.iterations for log in logs),
        "elapsed_secs": round(time.monotonic() - started, 3),
        "budget_secs": SCENARIO["budget_secs"],
        "budget_exhausted": budget_exhausted,
        "first_call_processes": first_call_processes,
        "worker_exceptions": sum(e["count"] for e in exceptions),
        "exceptions": exceptions,
        "anomalies": anomalies,
        "error": error,
    }
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(outcome, f, indent=1)
    os.replace(tmp, path)


def _check_invariants(log):
    """After every worker stopped: an object must agree with itself."""
    for name in INVARIANTS:
        obj = globals()[name]
        label = f"invariants of {name}"
        try:
            repr(obj)
            size = len(obj) if hasattr(type(obj), "__len__") else None
            items = list(iter(obj)) if hasattr(type(obj), "__iter__") or hasattr(type(obj), "__getitem__") else None
        except SystemError as exc:
            log.anomaly("internal-error", label, f"SystemError: {_describe(exc)}")
            continue
        except Exception as exc:  # noqa: BLE001
            log.anomaly("invariant", label, f"{type(exc).__name__} while reading a quiescent object: {_describe(exc)}")
            continue
        if size is not None and items is not None and size != len(items):
            log.anomaly("invariant", label, f"len() is {size} but iteration yields {len(items)} items")
        if items is not None and hasattr(obj, "keys") and hasattr(type(obj), "__getitem__"):
            for key in items[:MAX_ITEMS_CHECKED]:
                try:
                    if key not in obj:
                        log.anomaly("invariant", label, f"iterated key {key!r} is not `in` the object")
                        break
                except Exception:  # noqa: BLE001 - unhashable items: not a mapping after all
                    break


def _first_calls(barrier, log):
    """Every thread makes each first call at once. The calls are bound beforehand (a
    thread-owned partial) so that no shared reference count is touched between the
    barrier and the call: such atomics would order the threads and hide the race."""
    bound = [(label, bind()) for label, bind in FIRST_CALLS]
    for label, call in bound:
        barrier.wait()
        log.call(label, call)


def _one_first_call(bind, barrier):
    """One call after the start and nothing shared after it: a thread that finished early and
    went on to the next barrier would order itself before the late ones (through the barrier's
    lock), and TSan would no longer see the race."""
    call = bind()
    barrier.wait()
    try:
        call()
    except Exception:  # noqa: BLE001 - only the TSan log matters here
        pass


def _worker(index, barrier, deadline, log, exhausted):
    rng = random.Random(SCENARIO["seed"] * 1000003 + index)
    ops = ROLES[THREAD_ROLES[index % len(THREAD_ROLES)]]
    _first_calls(barrier, log)
    barrier.wait()
    for i in range(SCENARIO["iterations"]):
        if time.monotonic() > deadline:
            exhausted.append(index)
            break
        label, op = ops[rng.randrange(len(ops))]
        log.call(label, op, index, i, rng)
        log.iterations += 1


FIRST_CALLS_ONLY = "FTREVIEW_FIRST_CALLS_ONLY"
FIRST_CALL_CONCURRENCY = 2


def _first_call_rounds(started):
    """Lazy initialisation happens once per process, so first calls are repeated in fresh
    child processes, two at a time (same environment: their TSan
    logs land beside this one's), within two thirds of the budget. Returns how many ran."""
    env = dict(os.environ)
    env.pop("FTREVIEW_OUTCOME", None)
    command = [sys.executable, os.path.abspath(__file__)]
    rounds, batch_secs = 0, 0.0
    while rounds < SCENARIO["first_call_rounds"]:
        if time.monotonic() - started + batch_secs > SCENARIO["budget_secs"] * 2 / 3:
            break
        batch_started = time.monotonic()
        batch = min(FIRST_CALL_CONCURRENCY, SCENARIO["first_call_rounds"] - rounds)
        children = [
            subprocess.Popen(command, env=dict(env, **{FIRST_CALLS_ONLY: str(rounds + k)}), stdin=subprocess.DEVNULL)
            for k in range(batch)
        ]
        for child in children:
            child.wait()
        rounds += batch
        batch_secs = time.monotonic() - batch_started
    return rounds


def _first_calls_only(round_index):
    """A child process: each module function's first call from every thread at once, one
    thread group per function (joined before the next), starting with a different function
    in each round."""
    setup()
    shift = round_index % len(FIRST_CALLS)
    for _, bind in FIRST_CALLS[shift:] + FIRST_CALLS[:shift]:
        barrier = threading.Barrier(SCENARIO["threads"])
        workers = [threading.Thread(target=_one_first_call, args=(bind, barrier)) for _ in range(SCENARIO["threads"])]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()


def run():
    if os.environ.get(FIRST_CALLS_ONLY):
        return _first_calls_only(int(os.environ[FIRST_CALLS_ONLY]))
    started = time.monotonic()
    _write_outcome("started", started)
    rounds = _first_call_rounds(started) if FIRST_CALLS else 0
    try:
        setup()
    except BaseException:  # noqa: BLE001 - the setup error is the outcome
        _write_outcome("finished", started, error="setup failed: " + traceback.format_exc(limit=5), first_call_processes=rounds)
        return
    threads = SCENARIO["threads"]
    barrier = threading.Barrier(threads)
    # The workers get a third of the budget at least, however long the first-call rounds took.
    deadline = max(started + SCENARIO["budget_secs"], time.monotonic() + SCENARIO["budget_secs"] / 3)
    logs = [_Log() for _ in range(threads)]
    exhausted = []
    workers = [
        threading.Thread(target=_worker, args=(i, barrier, deadline, logs[i], exhausted), name=f"ftreview-worker-{i}")
        for i in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    final = _Log()
    _check_invariants(final)
    gc.collect()
    _write_outcome("finished", started, logs + [final], budget_exhausted=bool(exhausted), first_call_processes=rounds)


if __name__ == "__main__":
    run()
