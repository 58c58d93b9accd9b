"""A tiny HTTP app for the benchmarks: answers `GET /health` with 200 on 127.0.0.1:$PORT.

Any other path gets 404. Nothing is logged per request (a health check every second
would fill the app's log). Extra arguments are ignored. As a guard against leaked
processes it exits on its own when its parent changes (the manager died without
stopping it) or after MAX_LIFETIME seconds, like idle.py.
"""

import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

CHECK_EVERY = 5.0
MAX_LIFETIME = 4 * 3600.0
BODY = b'{"status":"ok"}\n'


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/health":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # die quietly, no traceback
    port = int(os.environ.get("PORT", "0"))
    if not 0 < port < 65536:
        sys.exit(f"health_app: PORT must be set to a TCP port, got {os.environ.get('PORT')!r}")
    server = HTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"health_app listening on http://127.0.0.1:{port}/health", flush=True)
    parent = os.getppid()
    deadline = time.monotonic() + MAX_LIFETIME
    while time.monotonic() < deadline and os.getppid() == parent:
        time.sleep(CHECK_EVERY)


if __name__ == "__main__":
    main()
