"""A tiny web app that answers on $PORT (default 8080) on loopback."""

import http.server
import json
import os


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"app": "web", "pid": os.getpid(), "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


port = int(os.environ.get("PORT", "8080"))
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
print(f"web: listening on http://127.0.0.1:{port}", flush=True)
server.serve_forever()
