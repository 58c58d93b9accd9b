"""Write argv[1] numbered lines to stdout and a few to stderr, then park."""

import sys
import time

for i in range(int(sys.argv[1])):
    print(f"line {i}")
print("an error line", file=sys.stderr)
sys.stdout.flush()
sys.stderr.flush()
while True:
    time.sleep(3600)
