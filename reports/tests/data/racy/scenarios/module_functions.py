"""module-functions: every module function hammered from 4 threads at once."""
import threading
import ftfixture_racy as fx

THREADS, ITERATIONS = 4, 2000
barrier = threading.Barrier(THREADS)

def worker(seed):
    bump, calls, lookup = fx.bump, fx.calls, fx.lookup
    barrier.wait()
    for i in range(ITERATIONS):
        lookup("kb")
        bump()
        calls()

threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
for t in threads: t.start()
for t in threads: t.join()
