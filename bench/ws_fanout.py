#!/usr/bin/env python3
"""WebSocket fan-out: one state change reaching 500 clients of pmdaemon's /ws stream.

pmdaemon only: PM2's open-source version has no WebSocket stream of process events (its
state changes reach other programs through its own axon bus or pm2.io's paid service),
so there is no PM2 figure and no ratio. One idle app; `pmdaemon web -p 0 --api-key KEY`
attached to the daemon; 500 clients of the public stream (`/ws`, no key: process events
are public, only log subscriptions need it) in this one asyncio process, each reading
everything it is sent. Each round runs `pmdaemon stop APP` and notes, for every client,
when it received the app's first `process_status` event with status `stopping` or
`stopped`, counted from the command's launch; then `pmdaemon start APP` and waits until
every client has seen it `online`. First, median and last client per round; the figures
are the medians over the rounds, with their range.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import harness
import rest_throughput as rest
import websockets
from common import Stats, raise_fd_limit, temp_dir
from manager import Manager

TARGET_LAST_MS = 1000.0
APP = "fan"
CONNECT_PARALLEL = 50  # handshakes in flight at once
CONNECT_TIMEOUT = 120.0  # all clients connected and their first snapshot read
EVENT_TIMEOUT = 10.0  # a client without the event by then missed it
COMMAND_TIMEOUT = 60.0
PAUSE = 0.5  # seconds between rounds, once every client has seen the app online
STOPPED = ("stopping", "stopped")
NO_PM2 = "pmdaemon only (open-source PM2 has no WebSocket stream)"


@dataclass
class Client:
    """One WebSocket connection: the app's status events it received, with their times."""

    events: list[tuple[float, str]] = field(default_factory=list)
    messages: int = 0
    snapshot: asyncio.Event = field(default_factory=asyncio.Event)
    closed: str | None = None

    def first_after(self, mark: int, statuses: tuple[str, ...]) -> float | None:
        for at, status in self.events[mark:]:
            if status in statuses:
                return at
        return None


async def read(ws: Any, client: Client) -> None:
    loop = asyncio.get_running_loop()
    try:
        async for raw in ws:
            now = loop.time()  # before any parsing
            client.messages += 1
            msg = json.loads(raw)
            kind = msg.get("type")
            if kind == "process_list":
                client.snapshot.set()
            elif kind == "process_status" and msg["data"].get("name") == APP:
                client.events.append((now, str(msg["data"].get("status"))))
    except websockets.ConnectionClosed as exc:
        client.closed = f"closed: {exc}"
    else:
        client.closed = "closed by the server"


async def run_command(m: Manager, *args: str) -> float:
    """Run one pmdaemon command without blocking the clients; returns its duration."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    proc = await asyncio.create_subprocess_exec(
        *m.command(),
        *args,
        env=m.env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), COMMAND_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"pmdaemon {' '.join(args)} ran over {COMMAND_TIMEOUT:g} s") from None
    if proc.returncode != 0:
        raise RuntimeError(f"pmdaemon {' '.join(args)} exited {proc.returncode}: {err.decode()}")
    return loop.time() - started


async def wait_all(
    clients: list[Client], marks: list[int], statuses: tuple[str, ...]
) -> list[float | None]:
    """Each client's time of its first event in `statuses` after its mark (None: none
    within EVENT_TIMEOUT)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + EVENT_TIMEOUT
    while True:
        times = [c.first_after(i, statuses) for c, i in zip(clients, marks, strict=True)]
        if all(t is not None for t in times) or loop.time() >= deadline:
            return times
        await asyncio.sleep(0.01)


@dataclass
class Round:
    first_ms: float
    median_ms: float
    last_ms: float
    missed: int
    command_s: float


async def fan_out(m: Manager, ws_url: str, clients_n: int, rounds: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    clients = [Client() for _ in range(clients_n)]
    gate = asyncio.Semaphore(CONNECT_PARALLEL)
    sockets: list[Any] = []
    readers: list[asyncio.Task[None]] = []

    async def connect(client: Client) -> None:
        async with gate:
            ws = await websockets.connect(
                ws_url, open_timeout=30, ping_interval=None, max_queue=None, max_size=2**22
            )
            sockets.append(ws)
            readers.append(asyncio.create_task(read(ws, client)))
            await client.snapshot.wait()

    started = loop.time()
    try:
        await asyncio.wait_for(asyncio.gather(*(connect(c) for c in clients)), CONNECT_TIMEOUT)
        connect_s = loop.time() - started
        print(f"{clients_n} clients connected in {connect_s:.2f} s", flush=True)
        await asyncio.sleep(PAUSE)
        results: list[Round] = []
        for r in range(rounds):
            marks = [len(c.events) for c in clients]
            t0 = loop.time()
            command_s = await run_command(m, "stop", APP)
            times = await wait_all(clients, marks, STOPPED)
            got = sorted((t - t0) * 1000 for t in times if t is not None)
            missed = len(times) - len(got)
            if not got:
                raise RuntimeError(f"round {r + 1}: no client received the stop event")
            results.append(Round(got[0], statistics.median(got), got[-1], missed, command_s))
            print(
                f"round {r + 1}: `stop` → first {got[0]:.1f} ms, median"
                f" {statistics.median(got):.1f} ms, last {got[-1]:.1f} ms"
                f" ({len(got)} of {clients_n} clients; the command took {command_s * 1000:.0f} ms)",
                flush=True,
            )
            marks = [len(c.events) for c in clients]
            await run_command(m, "start", APP)
            online = await wait_all(clients, marks, ("online",))
            if any(t is None for t in online):
                missing = sum(t is None for t in online)
                raise RuntimeError(f"round {r + 1}: {missing} clients never saw {APP} online")
            await asyncio.sleep(PAUSE)
        closed = [c.closed for c in clients if c.closed]
        return {
            "rounds": results,
            "connect_s": connect_s,
            "closed": closed,
            "messages": sum(c.messages for c in clients),
        }
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(
            *(asyncio.wait_for(ws.close(), 5) for ws in sockets), return_exceptions=True
        )
        await asyncio.gather(*readers, return_exceptions=True)


def run() -> None:
    p = harness.parser(__doc__ or "")
    p.add_argument("--clients", type=int, default=500)
    p.add_argument("--rounds", type=int, default=10)
    args = p.parse_args()
    if args.clients < 1 or args.rounds < 1:
        p.error("need --clients ≥ 1 and --rounds ≥ 1")

    keys = harness.manager_keys(args.managers)
    if "pmd" not in keys:  # e.g. `bench/run --managers pm2`
        print("PM2 has no WebSocket stream: this scenario measures pmdaemon only; skipped")
        harness.report([], [], {"skipped": "PM2 has no WebSocket stream"})
        return
    fd_limit = raise_fd_limit()
    if fd_limit < args.clients + 100:
        raise SystemExit(f"open-file limit {fd_limit} too low for {args.clients} clients")
    with harness.open_managers(["pmd"]) as managers, ExitStack() as stack:
        m = managers[0]
        m.start(APP, harness.idle_argv(harness.idle_tag(m, APP)))
        m.wait_online([APP], 60)
        ep = rest.start_pmd(m, stack, temp_dir("bench-ws-"))
        base = ep.url.removesuffix("/api/processes")
        ws_url = "ws" + base.removeprefix("http") + "/ws"
        started = time.monotonic()
        out = asyncio.run(fan_out(m, ws_url, args.clients, args.rounds))
        elapsed = time.monotonic() - started
        rest.stop_process(ep.proc)  # the listener first, then the manager (ExitStack)

        rounds: list[Round] = out["rounds"]
        missed = sum(r.missed for r in rounds)
        what = f"WebSocket fan-out, {args.clients} clients: `pmdaemon stop` → `process_status`"

        def row(label: str, attr: str, target: str = NO_PM2) -> harness.Row:
            return harness.Row(
                f"{what}, {label}",
                "ms",
                target,
                {"pmd": Stats.of([getattr(r, attr) for r in rounds])},
            )

        last = row(
            "last client", "last_ms", f"every round < {TARGET_LAST_MS:.0f} ms, no client missed"
        )
        last.met = missed == 0 and last.results["pmd"].max < TARGET_LAST_MS
        rows = [row("first client", "first_ms"), row("median client", "median_ms"), last]
        notes = {
            "clients": args.clients,
            "rounds": args.rounds,
            "missed": missed,
            "event_timeout_s": EVENT_TIMEOUT,
            "connect_s": round(out["connect_s"], 2),
            "closed_early": out["closed"][:10],
            "closed_early_count": len(out["closed"]),
            "messages": out["messages"],
            "stop_command_ms": round(statistics.median(r.command_s for r in rounds) * 1000, 1),
            "fd_limit": fd_limit,
            "elapsed_s": round(elapsed, 1),
        }
        if missed or out["closed"]:
            print(f"warning: {missed} events missed; {len(out['closed'])} clients closed early")
        harness.report(rows, managers, notes)


if __name__ == "__main__":
    harness.main(run)
