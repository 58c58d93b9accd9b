"""Print a line and exit at once with the code given as the first argument."""

import sys

print(f"exiting with {sys.argv[1]}", flush=True)
print("to stderr", file=sys.stderr, flush=True)
sys.exit(int(sys.argv[1]))
