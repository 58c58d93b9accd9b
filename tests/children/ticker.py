"""Print "PID N" with N = 0, 1, 2, ... every argv[1] seconds (default 0.01), forever."""

import os
import sys
import time

interval = float(sys.argv[1]) if len(sys.argv) > 1 else 0.01
pid, n = os.getpid(), 0
while True:
    print(f"{pid} {n}", flush=True)
    n += 1
    time.sleep(interval)
