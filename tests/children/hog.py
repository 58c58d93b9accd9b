"""Grow by argv[1] MiB every 100 ms up to argv[2] MiB, touch every page, then hold it."""

import sys
import time

step, limit = int(sys.argv[1]), int(sys.argv[2])
blocks = []
print("hog starting", flush=True)
while sum(len(b) for b in blocks) < limit * 1024 * 1024:
    blocks.append(bytearray(step * 1024 * 1024))  # bytearray zero-fills: pages are touched
    time.sleep(0.1)
print(f"hog holding {limit} MiB", flush=True)
while True:
    time.sleep(3600)
