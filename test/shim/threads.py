# SPDX-License-Identifier: MIT
# A threading workload for the shim test: a lock-protected counter and a
# queue.Queue producer/consumer. Its output depends only on the work done.
import hashlib
import queue
import threading

counter = 0
lock = threading.Lock()


def add(n):
    global counter
    for _ in range(n):
        with lock:
            counter += 1


def produce(q, n):
    for i in range(n):
        q.put(i * i)
    q.put(None)


def consume(q, out):
    h = hashlib.sha256()
    total = 0
    while (item := q.get()) is not None:
        total += item
        h.update(item.to_bytes(8, "little"))
    out.append((total, h.hexdigest()))


adders = [threading.Thread(target=add, args=(20000,)) for _ in range(4)]
for t in adders:
    t.start()
for t in adders:
    t.join()
print("counter", counter)

q = queue.Queue(maxsize=64)
out = []
threads = [threading.Thread(target=produce, args=(q, 5000)),
           threading.Thread(target=consume, args=(q, out))]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("queue", out[0][0], out[0][1])
