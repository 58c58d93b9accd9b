"""Serve /health on $PORT: 200, or whatever status the file argv[1] holds (e.g. 500).
Log one line per check. argv[2] (optional): seconds to wait before listening."""

import http.server
import os
import sys
import time

if len(sys.argv) > 2:
    time.sleep(float(sys.argv[2]))


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        try:
            with open(sys.argv[1]) as f:
                status = int(f.read().strip() or 200)
        except (OSError, ValueError):
            status = 200
        print(f"check {status}", flush=True)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


server = http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
print(f"listening on {os.environ['PORT']}", flush=True)
server.serve_forever()
