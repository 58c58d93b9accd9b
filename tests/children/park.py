"""Announce readiness on stdout, then sleep until killed."""

import os
import signal
import sys
import time


def on_usr1(signum: int, frame: object) -> None:
    print("got SIGUSR1", flush=True)


signal.signal(signal.SIGUSR1, on_usr1)

print(f"ready pid={os.getpid()}", flush=True)
if len(sys.argv) > 1:
    with open(sys.argv[1], "a") as f:
        f.write(f"{os.getpid()}\n")
while True:
    time.sleep(3600)
