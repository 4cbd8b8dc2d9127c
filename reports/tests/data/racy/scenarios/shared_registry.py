"""read-write on one Registry: latest() while replace_latest() frees the old entry."""
import threading
import ftfixture_racy as fx

THREADS, ITERATIONS = 4, 300
registry = fx.Registry()
registry.add(object())
barrier = threading.Barrier(THREADS)

def worker(seed):
    barrier.wait()
    for i in range(ITERATIONS):
        if (seed + i) % 2:
            registry.replace_latest([i])
        else:
            registry.latest()

threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
for t in threads: t.start()
for t in threads: t.join()
