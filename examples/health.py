"""A web app with a /health endpoint on $PORT (default 8082) on loopback."""

import http.server
import os


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ok = self.path == "/health"
        body = b"ok\n" if ok else b"not found\n"
        self.send_response(200 if ok else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the log for the app's own lines


port = int(os.environ.get("PORT", "8082"))
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
print(f"health: listening on http://127.0.0.1:{port}/health", flush=True)
server.serve_forever()
