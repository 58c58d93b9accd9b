"""Spawn a grandchild in our group and one that escapes into its own session, both
ignoring SIGTERM; write all three PIDs to the marker file (argv[1]), then park."""

import os
import signal
import subprocess
import sys
import time

PARK = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "while True: time.sleep(3600)"
)
same_group = subprocess.Popen([sys.executable, "-c", PARK])
escaped = subprocess.Popen([sys.executable, "-c", PARK], start_new_session=True)
tmp = sys.argv[1] + ".tmp"
with open(tmp, "w") as f:
    f.write(f"{os.getpid()} {same_group.pid} {escaped.pid}\n")
os.replace(tmp, sys.argv[1])
if len(sys.argv) > 2 and sys.argv[2] == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("tree ready", flush=True)
while True:
    time.sleep(3600)
