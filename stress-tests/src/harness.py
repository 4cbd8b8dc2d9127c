

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

OUTCOME_FORMAT = 2
MAX_ITEMS_CHECKED = 10000
# The control run: the same ops with the same seeds, one thread, in turn (round-robin over
# what each worker would have run). An anomaly it shows too is no concurrency bug.
SINGLE_THREAD = "FTREVIEW_SINGLE_THREAD"
# A file where the harness writes the time (Unix seconds) from which the process is stuck if
# it still runs; the runner then takes its stacks and stops it instead of waiting for its
# timeout. Stuck now: a worker alive past the workers' deadline with no progress for
# STUCK_AFTER seconds, inside one call (spinning in a corrupted structure, blocked on a lock)
# or after its last; or, once every worker's calls are done, one still alive EXIT_STUCK_AFTER
# seconds after its last call (a thread exit spinning in a corrupted heap). Stuck soon:
# STUCK_AFTER seconds after the script's end (interpreter finalization spinning in that heap).
STUCK_FILE = "FTREVIEW_STUCK_FILE"
STUCK_AFTER = 10.0
EXIT_STUCK_AFTER = 5.0


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
        self.progress = time.monotonic()  # when the last call started, or the worker ended

    def exception(self, label, exc):
        key = (label, type(exc).__name__)
        entry = self.exceptions.setdefault(key, [0, _describe(exc)])
        entry[0] += 1

    def anomaly(self, kind, label, detail, call):
        entry = self.anomalies.setdefault((kind, label), [0, detail, call])
        entry[0] += 1

    def call(self, entry, *args):
        label, op, call = entry
        self.progress = time.monotonic()
        try:
            op(*args)
        except SystemError as exc:  # a C function broke the C-API contract
            self.anomaly("internal-error", label, f"SystemError: {_describe(exc)}", call)
        except Exception as exc:  # noqa: BLE001 - workers record and go on
            self.exception(label, exc)


def _merge(logs):
    exceptions, anomalies = {}, {}
    for log in logs:
        for key, (count, message) in log.exceptions.items():
            exceptions.setdefault(key, [0, message])[0] += count
        for key, (count, detail, call) in log.anomalies.items():
            anomalies.setdefault(key, [0, detail, call])[0] += count
    return (
        [{"op": op, "type": kind, "message": msg, "count": n} for (op, kind), (n, msg) in sorted(exceptions.items())],
        [{"kind": kind, "op": op, "detail": detail, "count": n, "call": call}
         for (kind, op), (n, detail, call) in sorted(anomalies.items())],
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
        "single_thread": bool(os.environ.get(SINGLE_THREAD)),
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
    for name, setup in INVARIANTS:
        obj = globals()[name]
        label = f"invariants of {name}"
        # The reproducer rebuilds the object and reads it; the sequence that broke it is the scenario.
        read = f"{setup}; repr({name}); len({name}); list({name})"
        try:
            repr(obj)
            size = len(obj) if _defines(obj, "__len__") else None
            items = list(iter(obj)) if _defines(obj, "__iter__") or _defines(obj, "__getitem__") else None
        except SystemError as exc:
            log.anomaly("internal-error", label, f"SystemError: {_describe(exc)}", read)
            continue
        except Exception as exc:  # noqa: BLE001
            log.anomaly("invariant", label, f"{type(exc).__name__} while reading a quiescent object: {_describe(exc)}", read)
            continue
        if size is not None and items is not None and size != len(items):
            log.anomaly("invariant", label, f"len() is {size} but iteration yields {len(items)} items",
                        f"{setup}; assert len({name}) == len(list({name}))")
        if items is not None and _defines(obj, "keys") and _defines(obj, "__getitem__"):
            for key in items[:MAX_ITEMS_CHECKED]:
                try:
                    if key not in obj:
                        log.anomaly("invariant", label, f"iterated key {key!r} is not `in` the object",
                                    f"{setup}; assert all(k in {name} for k in list({name}))")
                        break
                except Exception:  # noqa: BLE001 - unhashable items: not a mapping after all
                    break


def _first_calls(barrier, log):
    """Every thread makes each first call at once. The calls are bound beforehand (a
    thread-owned partial) so that no shared reference count is touched between the
    barrier and the call: such atomics would order the threads and hide the race."""
    bound = [(label, bind(), call) for label, bind, call in FIRST_CALLS]
    for entry in bound:
        barrier.wait()
        log.call(entry)


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


def _worker_rng(index):
    return random.Random(SCENARIO["seed"] * 1000003 + index)


def _worker_ops(index):
    return ROLES[THREAD_ROLES[index % len(THREAD_ROLES)]]


class _Finish:
    """Counts the workers whose calls are done. Each takes the lock after its last call, so the
    order it makes between them comes after every access TSan should judge."""

    def __init__(self, workers):
        self._left = workers
        self._lock = threading.Lock()
        self.all_done = threading.Event()

    def worker_done(self):
        with self._lock:
            self._left -= 1
            if self._left == 0:
                self.all_done.set()


def _worker(index, barrier, deadline, log, exhausted, finish):
    rng = _worker_rng(index)
    ops = _worker_ops(index)
    try:
        _first_calls(barrier, log)
        barrier.wait()
        for i in range(SCENARIO["iterations"]):
            if time.monotonic() > deadline:
                exhausted.append(index)
                break
            log.call(ops[rng.randrange(len(ops))], index, i, rng)
            log.iterations += 1
    finally:
        log.progress = time.monotonic()
        finish.worker_done()


def _single_thread(started, deadline):
    """The control run: every worker's first calls, then their iterations in turn, each
    with its own seeded rng, all in this thread."""
    log = _Log()
    exhausted = False
    for label, bind, call in FIRST_CALLS * SCENARIO["threads"]:
        log.call((label, bind(), call))
    workers = [(index, _worker_rng(index), _worker_ops(index)) for index in range(SCENARIO["threads"])]
    for i in range(SCENARIO["iterations"]):
        if time.monotonic() > deadline:
            exhausted = True
            break
        for index, rng, ops in workers:
            log.call(ops[rng.randrange(len(ops))], index, i, rng)
            log.iterations += 1
    return log, exhausted


FIRST_CALLS_ONLY = "FTREVIEW_FIRST_CALLS_ONLY"
FIRST_CALL_CONCURRENCY = 2
FIRST_CALL_STUCK_AFTER = 3 * STUCK_AFTER


def _first_call_rounds(started):
    """Lazy initialisation happens once per process, so first calls are repeated in fresh
    child processes, two at a time (same environment: their TSan
    logs land beside this one's), within two thirds of the budget. Returns how many ran."""
    env = dict(os.environ)
    env.pop("FTREVIEW_OUTCOME", None)
    env.pop(STUCK_FILE, None)
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
            _wait_first_call_process(child)
        rounds += batch
        batch_secs = time.monotonic() - batch_started
    return rounds


def _wait_first_call_process(child):
    """A first-call process still running FIRST_CALL_STUCK_AFTER seconds on (it takes about
    a second) is stuck in a first call: the runner takes the whole group's stacks."""
    try:
        child.wait(FIRST_CALL_STUCK_AFTER)
    except subprocess.TimeoutExpired:
        print(f"ftreview: first-call process {child.pid} still runs after {FIRST_CALL_STUCK_AFTER:.0f} s: stuck",
              file=sys.stderr, flush=True)
        _stuck_from(0.0, "a first-call process stuck")
        child.wait()


def _first_calls_only(round_index):
    """A child process: each module function's first call from every thread at once, one
    thread group per function (joined before the next), starting with a different function
    in each round."""
    setup()
    shift = round_index % len(FIRST_CALLS)
    for _, bind, _ in FIRST_CALLS[shift:] + FIRST_CALLS[:shift]:
        barrier = threading.Barrier(SCENARIO["threads"])
        workers = [threading.Thread(target=_one_first_call, args=(bind, barrier)) for _ in range(SCENARIO["threads"])]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()


def _join(workers, logs, deadline, finish):
    """Joins the workers. Until every worker's calls are done, or the deadline, nothing is read
    from them (reading a worker's state would order the threads through its lock). From then
    on a worker still alive with no progress for a while (EXIT_STUCK_AFTER once all are done:
    a thread exit takes milliseconds; STUCK_AFTER past the deadline) is stuck, and the stuck
    file says so, once."""
    all_done = finish.all_done.wait(max(0.0, deadline - time.monotonic()))
    patience = EXIT_STUCK_AFTER if all_done else STUCK_AFTER
    where = "after its last call" if all_done else "past the deadline"
    told = False
    for worker in workers:
        while worker.is_alive():
            worker.join(0.5)
            now = time.monotonic()
            stuck = [i for i, (w, log) in enumerate(zip(workers, logs)) if w.is_alive() and now - log.progress > patience]
            if stuck and not told:
                told = True
                print(f"ftreview: worker(s) {stuck} alive {where} with no progress for {patience:.0f} s: stuck",
                      file=sys.stderr, flush=True)
                _stuck_from(0.0, "a worker stuck")


def _stuck_from(delay, why):
    """Tells the runner the process is stuck from `delay` seconds on if it still runs."""
    path = os.environ.get(STUCK_FILE)
    if path:
        with open(path, "w") as f:
            f.write(f"{time.time() + delay:.3f} {why}\n")


def run():
    if os.environ.get(FIRST_CALLS_ONLY):
        return _first_calls_only(int(os.environ[FIRST_CALLS_ONLY]))
    started = time.monotonic()
    _write_outcome("started", started)
    single = bool(os.environ.get(SINGLE_THREAD))
    rounds = _first_call_rounds(started) if FIRST_CALLS and not single else 0
    try:
        setup()
    except BaseException:  # noqa: BLE001 - the setup error is the outcome
        _write_outcome("finished", started, error="setup failed: " + traceback.format_exc(limit=5), first_call_processes=rounds)
        return
    if single:
        log, exhausted = _single_thread(started, started + SCENARIO["budget_secs"])
        final = _Log()
        _check_invariants(final)
        _write_outcome("finished", started, [log, final], budget_exhausted=exhausted)
        return
    threads = SCENARIO["threads"]
    barrier = threading.Barrier(threads)
    # The workers get a third of the budget at least, however long the first-call rounds took.
    deadline = max(started + SCENARIO["budget_secs"], time.monotonic() + SCENARIO["budget_secs"] / 3)
    logs = [_Log() for _ in range(threads)]
    exhausted = []
    finish = _Finish(threads)
    workers = [
        threading.Thread(target=_worker, args=(i, barrier, deadline, logs[i], exhausted, finish), name=f"ftreview-worker-{i}")
        for i in range(threads)
    ]
    for worker in workers:
        worker.start()
    _join(workers, logs, deadline, finish)
    final = _Log()
    _check_invariants(final)
    gc.collect()
    _write_outcome("finished", started, logs + [final], budget_exhausted=bool(exhausted), first_call_processes=rounds)


if __name__ == "__main__":
    run()
    _stuck_from(STUCK_AFTER, "still exiting")
