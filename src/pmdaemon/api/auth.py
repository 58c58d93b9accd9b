"""API-key authentication exactly as the seed document describes it, plus what keeps it
safe in practice: constant-time comparison, read-only keys, slowing down clients that keep
failing, oversized headers refused, security headers on every answer, an access log that
never shows a key. All pure ASGI, so HTTP and WebSocket share it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from urllib.parse import parse_qs

from pmdaemon.api.audit import AuditLog
from pmdaemon.units import format_timestamp

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UNAUTHORIZED = json.dumps({"error": "Unauthorized", "message": "Invalid or missing API key"})
FORBIDDEN = json.dumps({"error": "Forbidden", "message": "Access denied"})
PUBLIC_HTTP = frozenset({("GET", "/"), ("HEAD", "/")})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_HEADER_BYTES = 16 * 1024

access_log = logging.getLogger("pmdaemon.access")


class Access(Enum):
    NONE = 0
    READ = 1
    FULL = 2


def key_id(key: str) -> str:
    """A short, stable, non-reversible name for a key (for logs that must not show it)."""
    return hashlib.sha256(key.encode()).hexdigest()[:8]


class KeySet:
    def __init__(self, full: Iterable[str] = (), read_only: Iterable[str] = ()) -> None:
        self._keys = [(k.encode(), Access.FULL) for k in full]
        self._keys += [(k.encode(), Access.READ) for k in read_only]

    @property
    def configured(self) -> bool:
        return bool(self._keys)

    def check(self, candidates: list[str]) -> tuple[Access, str | None]:
        """The best access any candidate grants, comparing against every key in constant
        time (no early exit, so timing says nothing about which key nearly matched)."""
        best, best_id = Access.NONE, None
        for candidate in candidates:
            raw = candidate.encode()
            for key, access in self._keys:
                if hmac.compare_digest(raw, key) and access.value > best.value:
                    best, best_id = access, key_id(candidate)
        return best, best_id


def presented_keys(scope: Scope) -> list[str]:
    """Keys from ``Authorization: Bearer|ApiKey KEY`` (any case) and ``X-API-Key: KEY``."""
    found: list[str] = []
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, rest = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() in ("bearer", "apikey") and rest.strip():
                found.append(rest.strip())
        elif name == b"x-api-key":
            text = value.decode("latin-1").strip()
            if text:
                found.append(text)
    return found


WS_PROTOCOL = "pmdaemon"
WS_KEY_PREFIX = "pmdaemon.key."


def protocol_key(scope: Scope) -> list[str]:
    """A key offered as the WebSocket subprotocol ``pmdaemon.key.<base64url(KEY)>`` (with
    ``pmdaemon`` beside it, the one the server picks): the way a browser can present a key
    in the handshake, where it can set no header and the key stays out of the URL."""
    for offered in scope.get("subprotocols", ()):
        if isinstance(offered, str) and offered.startswith(WS_KEY_PREFIX):
            encoded = offered[len(WS_KEY_PREFIX) :]
            try:
                key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
            except (ValueError, UnicodeDecodeError):
                return []
            return [key] if key else []
    return []


def query_key(scope: Scope) -> list[str]:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("api_key", [])
    return [v for v in values if v][:1]


@dataclass
class FailureLimiter:
    """After ``limit`` failures within ``window`` seconds a client is refused with 429 until
    its oldest failure leaves the window. Bounded in memory."""

    limit: int = 10
    window: float = 60.0
    max_clients: int = 10_000
    _failures: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)

    def retry_after(self, client: str) -> int:
        times = self._failures.get(client)
        if not times:
            return 0
        now = time.monotonic()
        while times and now - times[0] > self.window:
            times.popleft()
        if len(times) < self.limit:
            return 0
        return max(1, int(self.window - (now - times[0])) + 1)

    def fail(self, client: str) -> None:
        times = self._failures.setdefault(client, deque(maxlen=self.limit))
        self._failures.move_to_end(client)
        times.append(time.monotonic())
        while len(self._failures) > self.max_clients:
            self._failures.popitem(last=False)

    def succeed(self, client: str) -> None:
        self._failures.pop(client, None)


@dataclass
class WebOptions:
    keys: KeySet = field(default_factory=KeySet)
    ws_auth: bool = False
    tls: bool = False
    cors_origins: list[str] = field(default_factory=list)
    verbose: bool = False
    access_sink: Callable[[str], None] | None = None
    audit: AuditLog | None = None
    rate_limit: int = 0  # requests a minute per client; 0: no limit
    failures: FailureLimiter | None = None  # wrong keys per client, HTTP and WebSocket


UI_PREFIX = "/ui"


def _is_ui(path: str) -> bool:
    return path == UI_PREFIX or path.startswith(UI_PREFIX + "/")


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "local"


async def send_json(
    send: Send,
    status: int,
    body: str,
    extra: Sequence[tuple[bytes, bytes]] = (),
    kind: str = "http",
) -> None:
    """A JSON answer; ``kind`` "websocket.http" answers a WebSocket handshake instead."""
    data = body.encode()
    await send(
        {
            "type": f"{kind}.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": f"{kind}.response.body", "body": data})


def error_json(status: int, label: str, message: str, code: str) -> str:
    return json.dumps(
        {"success": False, "error": label, "message": message, "code": code, "details": {}}
    )


class AuthMiddleware:
    """Decides, before the app sees a request, whether it may proceed."""

    def __init__(
        self, app: ASGIApp, options: WebOptions, limiter: FailureLimiter | None = None
    ) -> None:
        self.app = app
        self.options = options
        self.limiter = limiter or options.failures or FailureLimiter()
        options.failures = self.limiter  # the WebSocket's auth messages count here too

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        size = sum(len(k) + len(v) for k, v in scope.get("headers", ()))
        if size > MAX_HEADER_BYTES:
            scope["pmd.auth"] = "refused"
            await self._deny(
                scope,
                send,
                431,
                error_json(
                    431,
                    "Request header fields too large",
                    f"request headers larger than {MAX_HEADER_BYTES // 1024} KiB",
                    "HEADERS_TOO_LARGE",
                ),
            )
            return
        keys = self.options.keys
        method = scope.get("method", "GET")
        kind, path = scope["type"], scope["path"]
        public = (
            (kind == "http" and (method, path) in PUBLIC_HTTP)
            or (kind == "websocket" and path == "/ws" and not self.options.ws_auth)
            # The dashboard's static files carry no data: everything it shows comes through
            # the API with the key.
            or (kind == "http" and method in ("GET", "HEAD") and _is_ui(path))
        )
        if not keys.configured:
            scope["pmd.auth"] = "open"
            scope["pmd.access"] = Access.FULL
            await self.app(scope, receive, send)
            return
        client = _client(scope)
        candidates = presented_keys(scope)
        if scope["type"] == "websocket":
            candidates += query_key(scope) + protocol_key(scope)
        access, kid = keys.check(candidates) if candidates else (Access.NONE, None)
        scope["pmd.access"] = access
        scope["pmd.key_id"] = kid
        if public:
            scope["pmd.auth"] = "public" if access == Access.NONE else "ok"
            await self.app(scope, receive, send)
            return
        wait = self.limiter.retry_after(client)
        if wait:
            scope["pmd.auth"] = "throttled"
            await self._deny(
                scope,
                send,
                429,
                error_json(
                    429,
                    "Too many requests",
                    f"too many failed authentications from this client; retry in {wait}s",
                    "TOO_MANY_REQUESTS",
                ),
                [(b"retry-after", str(wait).encode())],
            )
            return
        if access == Access.NONE:
            if candidates:  # only a presented key that is wrong counts as a guess
                self.limiter.fail(client)
            scope["pmd.auth"] = "missing" if not candidates else "invalid"
            await self._deny(scope, send, 401, UNAUTHORIZED)
            return
        self.limiter.succeed(client)
        if access == Access.READ and scope["type"] == "http" and method not in READ_METHODS:
            scope["pmd.auth"] = "forbidden"
            await self._deny(scope, send, 403, FORBIDDEN)
            return
        scope["pmd.auth"] = "ok"
        await self.app(scope, receive, send)

    async def _deny(
        self,
        scope: Scope,
        send: Send,
        status: int,
        body: str,
        extra: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        if scope["type"] == "http":
            await send_json(send, status, body, extra)
        # WebSocket: answer the handshake with the HTTP status where the server can.
        elif "websocket.http.response" in scope.get("extensions", {}):
            await send_json(send, status, body, extra, kind="websocket.http")
        else:
            await send({"type": "websocket.close", "code": 1008})


class SecurityHeadersMiddleware:
    """Security headers on every HTTP answer, and the access log line when verbose."""

    def __init__(self, app: ASGIApp, options: WebOptions) -> None:
        self.app = app
        self.options = options
        self.headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"cache-control", b"no-store"),
        ]
        if options.tls:
            self.headers.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [0]

        async def wrapped(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                status[0] = message["status"]
                message["headers"] = [*message.get("headers", ()), *self.headers]
            elif message["type"] == "websocket.accept":
                status[0] = 101
            await send(message)

        try:
            await self.app(scope, receive, wrapped)
        finally:
            method = scope.get("method", "WS")
            if self.options.audit is not None and method not in ("WS", *READ_METHODS):
                self.options.audit.record(
                    client=_client(scope),
                    key_id=scope.get("pmd.key_id"),
                    auth=scope.get("pmd.auth", "-"),
                    method=method,
                    path=scope["path"],
                    status=status[0] or 500,
                )
            if self.options.verbose:
                # The path only: a query string may carry api_key=.
                elapsed = (time.perf_counter() - started) * 1000
                line = (
                    f"{format_timestamp(time.time())} "
                    f"{_client(scope)} {scope.get('method', 'WS')} {scope['path'][:200]} "
                    f"{status[0]} {elapsed:.1f}ms auth={scope.get('pmd.auth', '-')}"
                )
                if self.options.access_sink is not None:
                    self.options.access_sink(line)
                else:
                    access_log.info("%s", line)
