"""Answer GET / on 127.0.0.1:$PORT with the pid and the instance variables, as JSON."""

import http.server
import json
import os

KEYS = (
    "PORT",
    "PM2_INSTANCE_ID",
    "NODE_APP_INSTANCE",
    "PMDAEMON_INSTANCE",
    "PMDAEMON_NAME",
    "PMDAEMON_ID",
)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"pid": os.getpid(), **{k: os.environ.get(k) for k in KEYS}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
print(f"listening on {os.environ['PORT']}", flush=True)
server.serve_forever()
