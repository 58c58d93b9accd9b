"""A ticking child for the benchmarks: prints its wall-clock time (time.time(), six
decimals) on a line of its own every INTERVAL seconds on average, flushed at once, so that
a reader can tell how late each line reaches it.

Each gap is drawn at random between INTERVAL - JITTER and INTERVAL + JITTER: a reader that
polls at a fixed period would otherwise see every line at nearly the same phase of its
period, and a few seconds of lines would measure that phase rather than the reader.

Extra arguments are ignored (a tag, to recognise the process in /proc). As a guard against
leaked processes it exits on its own when its parent changes or after MAX_LIFETIME seconds.
"""

import os
import random
import signal
import sys
import time

INTERVAL = 0.05
JITTER = 0.02
MAX_LIFETIME = 3600.0


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # die quietly, no traceback
    parent = os.getppid()
    deadline = time.monotonic() + MAX_LIFETIME
    due = time.monotonic()
    while due < deadline and os.getppid() == parent:
        sys.stdout.write(f"{time.time():.6f}\n")
        sys.stdout.flush()
        # Due times are kept on their own schedule, so a slow write does not shift the rest.
        due += random.uniform(INTERVAL - JITTER, INTERVAL + JITTER)
        time.sleep(max(0.0, due - time.monotonic()))


if __name__ == "__main__":
    main()
