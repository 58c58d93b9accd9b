"""Grow by argv[1] MiB every 100 ms up to argv[2] MiB, touch every page, then hold it.
With argv[3] (MiB) and argv[4] (a file), write the wall time just before the RSS passes that."""

import os
import sys
import time

step, limit = int(sys.argv[1]), int(sys.argv[2])
mark = int(sys.argv[3]) * 1024 * 1024 if len(sys.argv) > 4 else None
blocks = []
print("hog starting", flush=True)
while sum(len(b) for b in blocks) < limit * 1024 * 1024:
    with open("/proc/self/statm") as statm:  # resident pages of this process
        rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    # The time is written before the block that takes the RSS past the mark: the pages fill
    # while the block is made, and the manager may end the process before it is complete.
    if mark is not None and rss + step * 1024 * 1024 > mark:
        with open(sys.argv[4], "a") as f:
            f.write(f"{time.time()}\n")
        mark = None
    blocks.append(bytearray(step * 1024 * 1024))  # bytearray zero-fills: pages are touched
    time.sleep(0.1)
print(f"hog holding {limit} MiB", flush=True)
while True:
    time.sleep(3600)
