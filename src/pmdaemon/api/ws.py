"""The read-only WebSocket stream of SPEC §11.4: snapshots on connect, then every state
change and the periodic metrics, through a bounded per-client queue. A client that falls
behind is dropped; it never slows the daemon or other clients."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import msgspec
from starlette.websockets import WebSocket, WebSocketDisconnect

from pmdaemon import logfiles
from pmdaemon.api.auth import WS_PROTOCOL, Access, WebOptions
from pmdaemon.errors import PmdError
from pmdaemon.events import Event
from pmdaemon.managed import ManagedProcess
from pmdaemon.supervisor import Supervisor
from pmdaemon.system import SystemSampler
from pmdaemon.units import format_timestamp

# Events a client may fall behind by (bursts: `restart all` of 100 apps is 300 events).
QUEUE_SIZE = 2048
FOLLOW_POLL = 0.1  # seconds between looks at a followed log file
# A client whose socket takes no data for this long is dropped.
SEND_TIMEOUT = 5.0
MAX_MESSAGE = 64 * 1024


def message(type_: str, data: dict[str, Any] | list[Any], ts: float | None = None) -> str:
    return msgspec.json.encode(
        {"type": type_, "data": data, "timestamp": format_timestamp(ts or time.time())}
    ).decode()


def wire(event: Event) -> str:
    """The event as a WebSocket message, encoded once for all clients."""
    text = event.encoded.get("ws")
    if text is None:
        text = event.encoded["ws"] = message(event.type, event.data, event.timestamp)
    return text


MAX_FOLLOWED = 64


class Connection:
    """One WebSocket client: its authentication and its log subscriptions."""

    def __init__(self, ws: WebSocket, sup: Supervisor, options: WebOptions) -> None:
        self.ws = ws
        self.sup = sup
        self.options = options
        self.authenticated = ws.scope.get("pmd.access", Access.NONE) != Access.NONE
        self.followers: dict[tuple[int, str], asyncio.Task[None]] = {}

    async def send(self, text: str) -> None:
        await asyncio.wait_for(self.ws.send_text(text), SEND_TIMEOUT)

    async def read(self) -> None:
        """Handle client messages until it goes; nothing a client sends changes the daemon."""
        while True:
            try:
                raw = await self.ws.receive_text()
            except (WebSocketDisconnect, RuntimeError, KeyError):
                return
            reply = self.handle(raw)
            if reply is not None:
                await self.send(reply)

    def handle(self, raw: str) -> str | None:
        if len(raw) > MAX_MESSAGE:
            return error(f"message larger than {MAX_MESSAGE // 1024} KiB")
        try:
            data = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return error("malformed message: expected a JSON object")
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            return error('invalid message: expected {"type": ...}')
        kind = data["type"]
        if kind == "auth":
            key = data.get("api_key")
            if not self.options.keys.configured:
                self.authenticated = True
            elif isinstance(key, str):
                access, _ = self.options.keys.check([key])
                self.authenticated = self.authenticated or access != Access.NONE
            return message("auth", {"authenticated": self.authenticated})
        if kind == "ping":
            return message("pong", {})
        if kind in ("subscribe", "unsubscribe"):
            return self.subscription(kind, data.get("logs"))
        return error(
            f"unknown message type {kind[:32]!r}: accepted auth, ping, subscribe, unsubscribe"
        )

    def subscription(self, kind: str, names: object) -> str:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or (not names):
            return error(f'invalid {kind}: expected {{"type": "{kind}", "logs": ["name", ...]}}')
        if self.options.keys.configured and not self.authenticated:
            return error(
                "log subscriptions need the API key: send "
                '{"type": "auth", "api_key": KEY} first, or connect with the key'
            )
        procs = []
        for name in names[:MAX_FOLLOWED]:
            try:
                procs += self.sup.resolve(name)
            except PmdError as exc:
                return error(exc.message)
        if kind == "unsubscribe":
            for proc in procs:
                for stream in ("out", "error"):
                    task = self.followers.pop((proc.id, stream), None)
                    if task is not None:
                        task.cancel()
            return message("unsubscribed", {"logs": [p.spec.name for p in procs]})
        for proc in procs:
            for stream, path in (("out", proc.out_log), ("error", proc.error_log)):
                key = (proc.id, stream)
                if key not in self.followers and len(self.followers) < MAX_FOLLOWED * 2:
                    self.followers[key] = asyncio.get_running_loop().create_task(
                        self.follow(proc, stream, path)
                    )
        return message("subscribed", {"logs": [p.spec.name for p in procs]})

    async def follow(self, proc: ManagedProcess, stream: str, path: Path) -> None:
        with contextlib.suppress(WebSocketDisconnect, TimeoutError, RuntimeError, OSError):
            async for line in logfiles.follow(path, poll_interval=FOLLOW_POLL):
                await self.send(message("log_message", proc.log_entry(stream, line)))

    def close(self) -> None:
        for task in self.followers.values():
            task.cancel()
        self.followers.clear()


def error(text: str) -> str:
    return message("error", {"message": text})


async def websocket_endpoint(
    ws: WebSocket, sup: Supervisor, system: SystemSampler, options: WebOptions
) -> None:
    # A client that offered the pmdaemon subprotocol (a browser presenting its key that
    # way) must get it back, or the browser drops the connection.
    offered = ws.scope.get("subprotocols", ())
    await ws.accept(subprotocol=WS_PROTOCOL if WS_PROTOCOL in offered else None)
    sub = sup.bus.subscribe(QUEUE_SIZE)
    conn = Connection(ws, sup, options)
    reader = asyncio.get_running_loop().create_task(conn.read())
    try:
        sup.refresh()
        await conn.send(message("process_list", {"processes": [p.view() for p in sup.sorted()]}))
        await conn.send(message("system_metrics", system.view(sup.counts())))
        while True:
            next_event = asyncio.ensure_future(sub.get())
            done, _ = await asyncio.wait({next_event, reader}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                next_event.cancel()
                return
            event: Event | None = next_event.result()
            if event is None:  # dropped for falling behind
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(1013, "too slow: dropped"), 1.0)
                return
            await conn.send(wire(event))
    except (WebSocketDisconnect, TimeoutError, RuntimeError, OSError):
        return
    finally:
        sub.close()
        reader.cancel()
        conn.close()
