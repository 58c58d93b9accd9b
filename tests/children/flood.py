"""Write numbered lines to stdout as fast as possible, then exit (or park with --park).

    flood.py MEGABYTES [--park] [--report FILE]

Line i is ``i`` then ``i % 97`` x's: a line cut in two or glued to another is detectable,
and so is a missing or repeated one. --report writes the seconds the writing took."""

import sys
import time

total = int(float(sys.argv[1]) * 1024 * 1024)
report = sys.argv[sys.argv.index("--report") + 1] if "--report" in sys.argv else None
out = sys.stdout.buffer
start = time.perf_counter()
written, i, batch = 0, 0, 2000
while written < total:
    chunk = "".join(f"{n} {'x' * (n % 97)}\n" for n in range(i, i + batch)).encode()
    out.write(chunk)
    written += len(chunk)
    i += batch
out.flush()
elapsed = time.perf_counter() - start
if report:
    with open(report, "w") as f:
        f.write(f"{elapsed} {i} {written}\n")
if "--park" in sys.argv:
    while True:
        time.sleep(3600)
