"""Ignore SIGTERM (and SIGINT), write the PID to a marker file, then park."""

import os
import signal
import sys
import time

signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
with open(sys.argv[1], "w") as f:
    f.write(f"{os.getpid()}\n")
print("ignoring SIGTERM", flush=True)
while True:
    time.sleep(3600)
