"""An idle child for the benchmarks: sleeps until killed.

Extra arguments are ignored; the scenarios pass a tag so that the process can be
recognised in /proc by its command line. As a guard against leaked processes it exits
on its own when its parent changes (the manager died without stopping it) or after
MAX_LIFETIME seconds.
"""

import os
import signal
import time

CHECK_EVERY = 5.0
MAX_LIFETIME = 4 * 3600.0


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # die quietly, no traceback
    parent = os.getppid()
    deadline = time.monotonic() + MAX_LIFETIME
    while time.monotonic() < deadline and os.getppid() == parent:
        time.sleep(CHECK_EVERY)


if __name__ == "__main__":
    main()
