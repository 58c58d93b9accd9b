"""A background worker: does a unit of work every two seconds and logs it."""

import itertools
import time

for n in itertools.count(1):
    print(f"worker: processed job {n}", flush=True)
    time.sleep(2)
