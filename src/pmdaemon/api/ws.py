"""The WebSocket stream of SPEC §11.4 in the messages of PMDaemon's api/websocket-api.md:
snapshots on connect, then every state change, process event and the periodic metrics,
through a bounded per-client queue, filtered by what the client subscribed to. A client
that falls behind is dropped; it never slows the daemon or other clients. Commands on
existing processes need a full-access key."""

from __future__ import annotations

import asyncio
import contextlib
import time
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
from starlette.websockets import WebSocket, WebSocketDisconnect

from pmdaemon import logfiles
from pmdaemon.api.auth import WS_PROTOCOL, Access, WebOptions
from pmdaemon.api.errors import STATUS_BY_CODE
from pmdaemon.errors import PmdError
from pmdaemon.events import (
    DEFAULT_METRICS_INTERVAL,
    MIN_METRICS_INTERVAL,
    Event,
    Subscription,
)
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
RUNNING: set[asyncio.Task[Any]] = set()  # commands that outlive their connection


EVENTS = (
    "process_status",
    "process_metrics",
    "system_metrics",
    "health_update",
    "process_event",
    "process_deleted",
    "log_message",
)
METRICS = ("process_metrics", "system_metrics")
DONE = {  # the REST routes' messages
    "start": "Process started successfully",
    "stop": "Process stopped successfully",
    "restart": "Process restarted successfully",
    "reload": "Process reloaded successfully",
    "delete": "Process deleted successfully",
}
ACTIONS = tuple(DONE)


class Connection:
    """One WebSocket client: its authentication, what it subscribed to (event types,
    processes, metrics interval), and its log subscriptions."""

    def __init__(
        self,
        ws: WebSocket,
        sup: Supervisor,
        options: WebOptions,
        system: SystemSampler | None = None,
        sub: Subscription | None = None,
    ) -> None:
        self.ws = ws
        self.sup = sup
        self.options = options
        self.system = system
        self.sub = sub
        self.access: Access = ws.scope.get("pmd.access", Access.NONE)
        self.key_id: str | None = ws.scope.get("pmd.key_id")
        self.followers: dict[tuple[int, str], asyncio.Task[None]] = {}
        self.events: set[str] | None = None  # None: every type
        self.processes: set[str] | None = None  # None: every process
        self.interval = DEFAULT_METRICS_INTERVAL
        self.last_metrics: dict[str, float] = {}

    @property
    def authenticated(self) -> bool:
        return self.access != Access.NONE

    async def send(self, text: str) -> None:
        await asyncio.wait_for(self.ws.send_text(text), SEND_TIMEOUT)

    async def read(self) -> None:
        """Handle client messages until it goes. Only a command from a client that
        presented a full-access key changes the daemon."""
        while True:
            try:
                raw = await self.ws.receive_text()
            except (WebSocketDisconnect, RuntimeError, KeyError):
                return
            reply = await self.handle(raw)
            if reply is not None:
                await self.send(reply)

    async def handle(self, raw: str) -> str | None:
        if len(raw) > MAX_MESSAGE:
            return error(f"message larger than {MAX_MESSAGE // 1024} KiB")
        try:
            data = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return error("malformed message: expected a JSON object")
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            return error('invalid message: expected {"type": ...}')
        kind = data["type"]
        body = data.get("data", {})
        if not isinstance(body, dict):
            return error(f'invalid {kind[:32]}: "data" must be an object')
        if kind == "auth":
            key = data.get("api_key", body.get("api_key"))
            if not self.options.keys.configured:
                self.access = Access.FULL
            elif isinstance(key, str):
                client = self.ws.client.host if self.ws.client else "local"
                limiter = self.options.failures
                wait = limiter.retry_after(client) if limiter is not None else 0
                if wait:
                    return error(
                        f"too many failed authentications from this client; retry in {wait}s"
                    )
                access, kid = self.options.keys.check([key])
                if access == Access.NONE and limiter is not None:
                    limiter.fail(client)
                elif access != Access.NONE and self.access != Access.FULL:
                    self.access, self.key_id = access, kid
            return message(
                "auth",
                {"authenticated": self.authenticated, "access": self.access.name.lower()},
            )
        if kind == "ping":
            return message("pong", {})
        if kind in ("subscribe", "unsubscribe"):
            if "logs" in data:  # the older form: {"type": "subscribe", "logs": [names]}
                return self.subscription(kind, data.get("logs"))
            return self.filters(kind, body)
        if kind == "get_info":
            return self.get_info(body)
        if kind == "get_system":
            if self.system is None:
                return error("system metrics are not available here")
            return message("system_metrics", self.system.view(self.sup.counts()))
        if kind == "command":
            return await self.command(body)
        return error(
            f"unknown message type {kind[:32]!r}: accepted auth, ping, subscribe, unsubscribe, "
            "get_info, get_system, command"
        )

    # -- subscriptions --------------------------------------------------------------------

    def filters(self, kind: str, body: dict[str, Any]) -> str:
        """PMDaemon's {"type": "subscribe", "data": {"events", "processes", "interval"}}:
        checked whole before anything changes."""
        unknown = set(body) - (
            {"events", "processes", "interval"} if kind == "subscribe" else {"events"}
        )
        if unknown:
            return error(
                f"invalid {kind}: unknown field {sorted(unknown)[0][:32]!r}; accepted "
                + ("events, processes, interval" if kind == "subscribe" else "events")
            )
        events = body.get("events")
        if events is not None:
            if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
                return error(f"invalid {kind}: events must be a list of event types")
            bad = next((e for e in events if e not in EVENTS), None)
            if bad is not None:
                return error(
                    f"invalid {kind}: unknown event {bad[:32]!r}; accepted " + ", ".join(EVENTS)
                )
        if kind == "unsubscribe":
            if events is None:
                return error('invalid unsubscribe: expected {"data": {"events": [...]}}')
            self.events = (set(EVENTS) if self.events is None else self.events) - set(events)
            if "log_message" in events:
                self.close()
            return message("unsubscribed", {"events": sorted(self.events)})
        processes = body.get("processes")
        if processes is not None and (
            not isinstance(processes, list)
            or not all(isinstance(p, str) for p in processes)
            or len(processes) > 1024
        ):
            return error("invalid subscribe: processes must be a list of process names")
        interval = body.get("interval")
        if interval is not None and (
            not isinstance(interval, int | float)
            or isinstance(interval, bool)
            or not MIN_METRICS_INTERVAL * 1000 <= interval <= 3_600_000
        ):
            return error(
                f"invalid subscribe: interval is milliseconds from "
                f"{int(MIN_METRICS_INTERVAL * 1000)} to 3600000"
            )
        wants_logs = events is not None and "log_message" in events
        if wants_logs and self.options.keys.configured and not self.authenticated:
            return error(
                "log_message needs the API key: send "
                '{"type": "auth", "api_key": KEY} first, or connect with the key'
            )
        followed: list[ManagedProcess] = []
        if wants_logs:
            try:
                for name in processes if processes is not None else ["all"]:
                    followed += self.sup.resolve(name)
            except PmdError as exc:
                return error(exc.message)
        self.events = set(events) if events is not None else None
        self.processes = set(processes) if processes is not None else None
        if interval is not None:
            self.interval = interval / 1000
            if self.sub is not None:
                self.sub.metrics_interval = self.interval
        keep = {p.id for p in followed[:MAX_FOLLOWED]}
        for key in [k for k in self.followers if k[0] not in keep]:
            self.followers.pop(key).cancel()  # the new subscription replaces the old one
        self.follow_all(followed[:MAX_FOLLOWED])
        return message(
            "subscribed",
            {
                "events": sorted(self.events) if self.events is not None else list(EVENTS),
                "processes": sorted(self.processes) if self.processes is not None else None,
                "interval": round(self.interval * 1000),
                "logs": [p.spec.name for p in followed[:MAX_FOLLOWED]],
            },
        )

    def wants(self, event: Event, now: float) -> bool:
        """Whether this client gets ``event`` (its event types, and its metrics interval)."""
        if self.events is not None and event.type not in self.events:
            return False
        if event.type in METRICS:
            last = self.last_metrics.get(event.type)
            if last is not None and now - last < self.interval * 0.9:
                return False
            self.last_metrics[event.type] = now
        if self.processes is not None and event.type not in METRICS:
            name = event.data.get("name", event.data.get("process"))
            return name is None or name in self.processes
        return True

    def render(self, event: Event) -> str:
        if self.processes is not None and event.type == "process_metrics":
            shown = [p for p in event.data["processes"] if p["name"] in self.processes]
            return message(event.type, {"processes": shown}, event.timestamp)
        return wire(event)

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
        self.follow_all(procs)
        return message("subscribed", {"logs": [p.spec.name for p in procs]})

    def follow_all(self, procs: list[ManagedProcess]) -> None:
        for proc in procs:
            for stream, path in (("out", proc.out_log), ("error", proc.error_log)):
                key = (proc.id, stream)
                if key not in self.followers and len(self.followers) < MAX_FOLLOWED * 2:
                    task = asyncio.get_running_loop().create_task(self.follow(proc, stream, path))
                    self.followers[key] = task
                    task.add_done_callback(partial(self._followed, key))

    def _followed(self, key: tuple[int, str], task: asyncio.Task[None]) -> None:
        """A follower ended (its file went, or the client): it no longer counts."""
        if self.followers.get(key) is task:
            del self.followers[key]

    async def follow(self, proc: ManagedProcess, stream: str, path: Path) -> None:
        with contextlib.suppress(WebSocketDisconnect, TimeoutError, RuntimeError, OSError):
            async for line in logfiles.follow(path, poll_interval=FOLLOW_POLL):
                await self.send(message("log_message", proc.log_entry(stream, line)))

    # -- requests -------------------------------------------------------------------------

    def get_info(self, body: dict[str, Any]) -> str:
        from pmdaemon.api.app import detail  # the REST detail, as the TCP API shows it

        ident = body.get("process", body.get("id"))
        if isinstance(ident, int) and not isinstance(ident, bool):
            ident = str(ident)
        if not isinstance(ident, str) or not ident:
            return error('invalid get_info: expected {"data": {"process": NAME or ID}}')
        try:
            procs = self.sup.resolve(ident)
        except PmdError as exc:
            return error(exc.message)
        self.sup.refresh()
        shown = [detail(p, control=False) for p in procs]
        return message("process_info", shown[0] if len(shown) == 1 else {"processes": shown})

    async def command(self, body: dict[str, Any]) -> str:
        """stop, restart, reload, delete or start an existing process, for a client that
        presented a full-access key; never a new process over the network."""
        unknown = sorted(set(body) - {"action", "process", "id", "config"})
        if unknown:
            return error(
                f"invalid command: unknown field {unknown[0][:32]!r}; accepted action, process"
            )
        action, ident = body.get("action"), body.get("process", body.get("id"))
        if isinstance(ident, int) and not isinstance(ident, bool):
            ident = str(ident)
        if action not in ACTIONS or not isinstance(ident, str) or not ident:
            return error(
                'invalid command: expected {"data": {"action": one of '
                + ", ".join(ACTIONS)
                + ', "process": NAME or ID}}'
            )
        if not self.options.keys.configured:
            return error(
                "commands over the WebSocket need an API key: serve the API with --api-key, "
                "then connect with a full-access key"
            )
        if self.access != Access.FULL:
            return error(
                "commands need a full-access API key: connect with it, or send "
                '{"type": "auth", "api_key": KEY} first (a read-only key may only watch)'
            )
        if body.get("config") is not None:
            return error(
                "processes are not created over the network: start it with the CLI, then "
                "manage it here (a command names an existing process and takes no config)"
            )
        status = 500
        # The operation runs to its end even if this client goes away meanwhile: a restart
        # cut off halfway would leave the process stopping for ever.
        task = asyncio.get_running_loop().create_task(self.run(action, ident))
        RUNNING.add(task)
        task.add_done_callback(RUNNING.discard)
        try:
            procs = await asyncio.shield(task)
            status = 200
        except PmdError as exc:
            status = STATUS_BY_CODE.get(exc.code, 500)
            return message(
                "command_result",
                {
                    "action": action,
                    "process": ident,
                    "success": False,
                    "message": exc.message,
                    "code": exc.code,
                },
            )
        finally:
            if self.options.audit is not None:
                self.options.audit.record(
                    client=str(self.ws.client.host) if self.ws.client else "local",
                    key_id=self.key_id,
                    auth="ok",
                    method="WS",
                    path=f"/api/processes/{ident[:100]}/{action}",
                    status=status,
                )
        return message(
            "command_result",
            {
                "action": action,
                "process": ident,
                "success": True,
                "message": DONE[action],
                "processes": [p.view() for p in procs],
            },
        )

    async def run(self, action: str, ident: str) -> list[ManagedProcess]:
        if action == "start":
            return await self.sup.start(ident)
        if action == "stop":
            return await self.sup.stop(ident)
        if action == "restart":
            return await self.sup.restart(ident, None, None)
        if action == "reload":
            return await self.sup.reload(ident, None)
        return await self.sup.delete(ident)

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
    conn = Connection(ws, sup, options, system, sub)
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
            if conn.wants(event, time.monotonic()):
                await conn.send(conn.render(event))
    except (WebSocketDisconnect, TimeoutError, RuntimeError, OSError):
        return
    finally:
        sub.close()
        reader.cancel()
        conn.close()
