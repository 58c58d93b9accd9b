"""The read-only WebSocket stream of SPEC §11.4: snapshots on connect, then every state
change and the periodic metrics, through a bounded per-client queue. A client that falls
behind is dropped; it never slows the daemon or other clients."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import msgspec
from starlette.websockets import WebSocket, WebSocketDisconnect

from pmdaemon.api.auth import Access, WebOptions
from pmdaemon.events import Event
from pmdaemon.supervisor import Supervisor
from pmdaemon.system import SystemSampler
from pmdaemon.units import format_timestamp

# Events a client may fall behind by (bursts: `restart all` of 100 apps is 300 events).
QUEUE_SIZE = 2048
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


async def websocket_endpoint(
    ws: WebSocket, sup: Supervisor, system: SystemSampler, options: WebOptions
) -> None:
    await ws.accept()
    sub = sup.bus.subscribe(QUEUE_SIZE)
    state = {"authenticated": ws.scope.get("pmd.access", Access.NONE) != Access.NONE}
    reader = asyncio.get_running_loop().create_task(_read(ws, options, state))
    try:
        await ws.send_text(message("process_list", {"processes": [p.view() for p in sup.sorted()]}))
        await ws.send_text(message("system_metrics", system.view(sup.counts())))
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
            await asyncio.wait_for(ws.send_text(wire(event)), SEND_TIMEOUT)
    except (WebSocketDisconnect, TimeoutError, RuntimeError, OSError):
        return
    finally:
        sub.close()
        reader.cancel()


async def _read(ws: WebSocket, options: WebOptions, state: dict[str, bool]) -> None:
    """Handle client messages: ``auth``; anything else gets an error message, never a
    change to the daemon."""
    while True:
        try:
            raw = await ws.receive_text()
        except (WebSocketDisconnect, RuntimeError, KeyError):
            return
        reply = _handle(raw, options, state)
        if reply is not None:
            await ws.send_text(reply)


def _handle(raw: str, options: WebOptions, state: dict[str, bool]) -> str | None:
    if len(raw) > MAX_MESSAGE:
        return message("error", {"message": f"message larger than {MAX_MESSAGE // 1024} KiB"})
    try:
        data = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return message("error", {"message": "malformed message: expected a JSON object"})
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        return message("error", {"message": 'invalid message: expected {"type": ...}'})
    kind = data["type"]
    if kind == "auth":
        key = data.get("api_key")
        if not options.keys.configured:
            state["authenticated"] = True
        elif isinstance(key, str):
            access, _ = options.keys.check([key])
            state["authenticated"] = state["authenticated"] or access != Access.NONE
        return message("auth", {"authenticated": state["authenticated"]})
    if kind == "ping":
        return message("pong", {})
    if kind == "subscribe":
        return message(
            "error",
            {
                "message": "log subscriptions are not available in this "
                "version; the process and metrics stream is"
            },
        )
    return message("error", {"message": f"unknown message type {kind[:32]!r}: accepted auth, ping"})
