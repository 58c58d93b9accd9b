"""Start a grandchild that holds argv[1] MiB (via hog.py), and park."""

import os
import subprocess
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
subprocess.Popen([sys.executable, os.path.join(here, "hog.py"), argv_mb := sys.argv[1], argv_mb])
print("started the grandchild", flush=True)
while True:
    time.sleep(3600)
