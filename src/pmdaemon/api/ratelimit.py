"""Requests per client address, as PMDaemon's api/rest-api.md describes them: a limit a
minute with a burst limit in any ten seconds, told in X-RateLimit-* headers, and 429 with
Retry-After past them. Fixed windows, so each client costs a few numbers."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pmdaemon.api.auth import _client, _is_ui, error_json, send_json

WINDOW = 60.0
BURST_WINDOW = 10.0
MAX_CLIENTS = 10_000


@dataclass
class Window:
    start: float  # monotonic: a clock step never blocks a client
    count: int
    burst_start: float
    burst_count: int


class RateLimiter:
    """``limit`` requests a minute per client, at most ``limit // 5`` (at least 1) of them
    in any ten-second window."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.burst = max(1, limit // 5)
        self.clients: OrderedDict[str, Window] = OrderedDict()

    def take(self, client: str, now: float) -> tuple[int, int, float]:
        """Count one request: (remaining, retry_after in seconds or 0, reset time)."""
        w = self.clients.get(client)
        if w is None or now - w.start >= WINDOW:
            w = Window(now, 0, now, 0)
            self.clients[client] = w
        self.clients.move_to_end(client)
        while len(self.clients) > MAX_CLIENTS:
            self.clients.popitem(last=False)
        if now - w.burst_start >= BURST_WINDOW:
            w.burst_start, w.burst_count = now, 0
        reset = w.start + WINDOW
        if w.count >= self.limit:
            return 0, max(1, int(reset - now + 0.999)), reset
        if w.burst_count >= self.burst:
            wait = max(1, int(w.burst_start + BURST_WINDOW - now + 0.999))
            return self.limit - w.count, wait, reset
        w.count += 1
        w.burst_count += 1
        return self.limit - w.count, 0, reset


class RateLimitMiddleware:
    """Counts every HTTP request and WebSocket handshake but the dashboard's static files."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limiter = RateLimiter(limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or (
            scope["type"] == "http" and _is_ui(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        now = time.monotonic()
        remaining, wait, reset = self.limiter.take(_client(scope), now)
        reset += time.time() - now  # told as a Unix time
        headers = [
            (b"x-ratelimit-limit", str(self.limiter.limit).encode()),
            (b"x-ratelimit-remaining", str(remaining).encode()),
            (b"x-ratelimit-reset", str(int(reset)).encode()),
        ]
        if wait:
            scope["pmd.auth"] = "throttled"
            body = error_json(
                429,
                "Too many requests",
                f"more than {self.limiter.limit} requests a minute (or {self.limiter.burst} in "
                f"ten seconds) from this client; retry in {wait}s",
                "TOO_MANY_REQUESTS",
            )
            extra = [*headers, (b"retry-after", str(wait).encode())]
            if scope["type"] == "http":
                await send_json(send, 429, body, extra)
            elif "websocket.http.response" in scope.get("extensions", {}):
                await send_json(send, 429, body, extra, kind="websocket.http")
            else:
                await send({"type": "websocket.close", "code": 1008})
            return

        async def wrapped(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        await self.app(scope, receive, wrapped)
