import threading, random
from multidict import MultiDict
md = MultiDict()
N = 4
barrier = threading.Barrier(N)
def worker(i):
    rnd = random.Random(i)
    barrier.wait()
    for j in range(300):
        try:
            k = f"k{rnd.randrange(20)}"
            op = rnd.randrange(4)
            if op == 0: md.add(k, j)
            elif op == 1: md.getall(k, None)
            elif op == 2: list(md.items())
            else: md.popall(k, None)
        except Exception:
            pass
ts = [threading.Thread(target=worker, args=(i,)) for i in range(N)]
for t in ts: t.start()
for t in ts: t.join()
