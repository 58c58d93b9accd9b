"""An app that crashes after a few seconds, to show restarts and backoff."""

import random
import sys
import time

lifetime = random.uniform(3, 8)
print(f"flaky: up, will crash in {lifetime:.1f}s", flush=True)
time.sleep(lifetime)
print("flaky: crashing now", file=sys.stderr, flush=True)
sys.exit(1)
