"""shared-mutation + read-write on one Vector; extend from a Vector that mutates."""
import threading
import ftfixture_racy as fx

THREADS, ITERATIONS = 4, 300
shared, other = fx.Vector(), fx.Vector(range(8))
barrier = threading.Barrier(THREADS)

def worker(seed):
    barrier.wait()
    for i in range(ITERATIONS):
        op = (seed + i) % 5
        try:
            if op == 0: shared.append(i)
            elif op == 1: shared.sum(); len(shared)
            elif op == 2: shared.extend(other)
            elif op == 3: other.append(i)
            else: shared.pop()
        except IndexError:
            pass

threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
for t in threads: t.start()
for t in threads: t.join()
