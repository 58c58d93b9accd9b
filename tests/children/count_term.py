"""Append a line to the marker file (argv[1]) for every SIGTERM, exit 0.3 s after the
first one (so a second signal, if any, is recorded too)."""

import os
import signal
import sys
import time

stopping = False


def on_term(signum: int, frame: object) -> None:
    global stopping
    with open(sys.argv[1], "a") as f:
        f.write(f"TERM {os.getpid()}\n")
    stopping = True


signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
while not stopping:
    time.sleep(0.05)
time.sleep(0.3)
sys.exit(0)
