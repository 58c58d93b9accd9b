"""PMDaemon's WebSocket messages as api/websocket-api.md of entrepeneur4lyf/pmdaemon
documents them, against the real daemon and `pmdaemon web` on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import websockets

from helpers import Pmd, Web, child

PY = sys.executable
KEY = "ws-compat-key-0123456789"
READ_KEY = "ws-compat-read-key-0123456789"
DEADLINE = 30.0


async def recv(ws: Any) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), DEADLINE))
    return message


async def next_of(ws: Any, kinds: set[str], test: Callable[[dict[str, Any]], bool] = bool) -> Any:
    """The next message of one of ``kinds`` whose data passes ``test``."""
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        message = await recv(ws)
        if message["type"] in kinds and test(message["data"]):
            return message
    raise AssertionError(f"no {kinds} within {DEADLINE}s")


def test_metrics_messages_carry_the_documented_names(pmd: Pmd, web: Callable[..., Web]) -> None:
    """api/websocket-api.md: process_metrics (cpu, memory, uptime in ms, restarts) and
    system_metrics (cpu, memory.usage_percent, memory.available, load.one/five/fifteen),
    at the interval a subscribe asks for."""
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "web-api")
    w = web("--api-key", KEY)

    async def main() -> None:
        async with websockets.connect(w.ws_url) as ws:
            assert (await recv(ws))["type"] == "process_list"
            assert (await recv(ws))["type"] == "system_metrics"
            request = {"events": ["process_metrics", "system_metrics"], "interval": 500}
            await ws.send(json.dumps({"type": "subscribe", "data": request}))
            subscribed = await next_of(ws, {"subscribed"})
            assert subscribed["data"]["interval"] == 500
            metrics = await next_of(ws, {"process_metrics"})
            entry = metrics["data"]["processes"][0]
            assert set(entry) >= {"id", "name", "cpu", "memory", "uptime", "restarts"}
            assert entry["name"] == "web-api" and entry["memory"] > 0 and entry["uptime"] >= 0
            system = (await next_of(ws, {"system_metrics"}))["data"]
            assert 0 < system["memory"]["usage_percent"] < 100 and system["memory"]["available"]
            assert set(system["load"]) == {"one", "five", "fifteen"}
            stamps = [metrics["timestamp"]]
            for _ in range(4):
                stamps.append((await next_of(ws, {"process_metrics"}))["timestamp"])
            # The daemon's own stamps: broadcasts every 0.5 s, not every 2 s (the default).
            moments = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in stamps]
            gaps = sorted((b - a).total_seconds() for a, b in itertools.pairwise(moments))
            assert gaps[len(gaps) // 2] < 1.5, gaps

    asyncio.run(main())


def test_subscribe_filters_events_and_processes(pmd: Pmd, web: Callable[..., Web]) -> None:
    """api/websocket-api.md, Subscribe to Events: events and processes; Unsubscribe."""
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "web-api")
    pid_other = pmd.start(child("park.py"), "--interpreter", PY, "-n", "worker")["processes"][0][
        "pid"
    ]
    w = web("--api-key", KEY)

    async def main() -> None:
        async with websockets.connect(w.ws_url) as ws:
            await recv(ws)
            await recv(ws)
            request = {"events": ["process_status"], "processes": ["web-api"]}
            await ws.send(json.dumps({"type": "subscribe", "data": request}))
            reply = await next_of(ws, {"subscribed", "error"})
            assert reply["type"] == "subscribed" and reply["data"]["events"] == ["process_status"]
            os.kill(pid_other, signal.SIGKILL)  # worker: filtered out
            pmd.run("restart", "web-api")
            seen: list[str] = []
            in_flight = 0  # a metrics message already on its way when the filter came
            while len(seen) < 3:
                message = await recv(ws)
                if message["type"] in ("process_metrics", "system_metrics") and not seen:
                    in_flight += 1
                    assert in_flight <= 2, message
                    continue
                assert message["type"] == "process_status", message
                assert message["data"]["name"] == "web-api", message
                seen.append(message["data"]["status"])
            bad = {"events": ["process_status", "nonsense"]}
            await ws.send(json.dumps({"type": "subscribe", "data": bad}))
            error = await next_of(ws, {"error"})
            assert "unknown event 'nonsense'" in error["data"]["message"]
            await ws.send(
                json.dumps({"type": "unsubscribe", "data": {"events": ["process_status"]}})
            )
            assert (await next_of(ws, {"unsubscribed"}))["data"]["events"] == []

    asyncio.run(main())


def test_process_and_health_events(pmd: Pmd, web: Callable[..., Web], tmp_path: Path) -> None:
    """api/websocket-api.md: process_event (started, crashed, restarted, stopped with
    details) and health_update (process, status, previous_status, check_type, details)."""
    status = tmp_path / "status"
    status.write_text("fail")
    script = tmp_path / "check.sh"
    script.write_text(f'#!/bin/sh\ntest "$(cat {status})" = ok\n')
    script.chmod(0o755)
    check = f"{script} --token=s3cret"
    pid = pmd.start(
        child("park.py"),
        "--interpreter",
        PY,
        "-n",
        "web-api",
        "--health-check-script",
        check,
        "--health-check-interval",
        "300ms",
    )["processes"][0]["pid"]
    w = web("--api-key", KEY)

    async def main() -> None:
        async with websockets.connect(w.ws_url) as ws:
            await recv(ws)
            request = {"events": ["process_event", "health_update"]}
            await ws.send(json.dumps({"type": "subscribe", "data": request}))
            await next_of(ws, {"subscribed"})
            status.write_text("ok")
            health = (await next_of(ws, {"health_update"}))["data"]
            assert health["process"] == "web-api" and health["status"] == "healthy"
            assert health["previous_status"] == "unknown" and health["check_type"] == "script"
            # arguments never cross TCP
            assert health["details"]["script"] == f"{script} <hidden>"
            os.kill(pid, signal.SIGKILL)
            crashed = await next_of(ws, {"process_event"}, lambda d: d["event"] == "crashed")
            assert crashed["data"]["process"] == "web-api"
            assert crashed["data"]["details"]["signal"] == "SIGKILL"
            restarted = await next_of(ws, {"process_event"}, lambda d: d["event"] == "restarted")
            assert restarted["data"]["details"]["pid"] not in (None, pid)
            assert isinstance(restarted["data"]["details"]["startup_time"], int)
            pmd.run("stop", "web-api")
            await next_of(ws, {"process_event"}, lambda d: d["event"] == "stopped")

    asyncio.run(main())


def test_get_info_and_get_system_for_any_client(pmd: Pmd, web: Callable[..., Web]) -> None:
    """api/websocket-api.md: Request Process Information, Request System Information."""
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "web-api", "-e", "SECRET=x1y2")
    w = web("--api-key", KEY)

    async def main() -> None:
        async with websockets.connect(w.ws_url) as ws:  # no key: the public stream
            await ws.send(json.dumps({"type": "get_info", "data": {"process": "web-api"}}))
            info = await next_of(ws, {"process_info"})
            assert info["data"]["name"] == "web-api"
            assert info["data"]["config"]["env"] == {"SECRET": "<hidden>"}
            await ws.send(json.dumps({"type": "get_system", "data": {}}))
            answer = await next_of(ws, {"system_metrics"}, lambda d: "hostname" in d)
            assert answer["data"]["memory"]["usage_percent"] > 0
            await ws.send(json.dumps({"type": "get_info", "data": {"process": "nope"}}))
            assert "nope" in (await next_of(ws, {"error"}))["data"]["message"]

    asyncio.run(main())


def test_commands_need_a_full_access_key(pmd: Pmd, web: Callable[..., Web]) -> None:
    """api/websocket-api.md, Process Commands: stop/restart/start/delete of an existing
    process for a full-access client only; never a new process from a config."""
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "web-api")
    w = web("--api-key", KEY, "--read-only-api-key", READ_KEY)
    stop = json.dumps({"type": "command", "data": {"action": "stop", "process": "web-api"}})

    async def main() -> None:
        async with websockets.connect(w.ws_url) as ws:
            await ws.send(stop)
            assert "full-access" in (await next_of(ws, {"error"}))["data"]["message"]
            await ws.send(json.dumps({"type": "auth", "api_key": READ_KEY}))
            assert (await next_of(ws, {"auth"}))["data"]["access"] == "read"
            await ws.send(stop)
            assert "full-access" in (await next_of(ws, {"error"}))["data"]["message"]
        assert pmd.proc("web-api")["status"] == "online"
        async with websockets.connect(w.ws_url, additional_headers={"X-API-Key": KEY}) as ws:
            await ws.send(stop)
            done = await next_of(ws, {"command_result"})
            assert done["data"]["success"] is True and done["data"]["action"] == "stop"
            create = {
                "action": "start",
                "process": "new-service",
                "config": {"script": "touch", "args": ["/tmp/pwned-by-ws"]},
            }
            await ws.send(json.dumps({"type": "command", "data": create}))
            refused = await next_of(ws, {"error"})
            assert "not created over the network" in refused["data"]["message"]
            await ws.send(json.dumps({"type": "command", "data": {"action": "explode"}}))
            assert "invalid command" in (await next_of(ws, {"error"}))["data"]["message"]
            start = {"action": "start", "process": "web-api"}
            await ws.send(json.dumps({"type": "command", "data": start}))
            assert (await next_of(ws, {"command_result"}))["data"]["success"] is True

    asyncio.run(main())
    assert [p["name"] for p in pmd.list()] == ["web-api"] and not Path("/tmp/pwned-by-ws").exists()
    assert pmd.proc("web-api")["status"] == "online"


def test_commands_are_refused_without_keys(pmd: Pmd, web: Callable[..., Web]) -> None:
    """With no API key configured, a WebSocket client never drives the daemon."""
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "web-api")
    w = web()

    async def main() -> None:
        async with websockets.connect(w.ws_url) as ws:
            stop = {"action": "stop", "process": "web-api"}
            await ws.send(json.dumps({"type": "command", "data": stop}))
            assert "need an API key" in (await next_of(ws, {"error"}))["data"]["message"]

    asyncio.run(main())
    assert pmd.proc("web-api")["status"] == "online"


def test_bad_subscriptions_change_nothing(pmd: Pmd, web: Callable[..., Web]) -> None:
    """Each malformed subscribe gets one error sentence; the earlier filter still holds."""
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "web-api")
    w = web("--api-key", KEY)

    async def main() -> None:
        async with websockets.connect(w.ws_url) as ws:
            good = {"events": ["process_status"]}
            await ws.send(json.dumps({"type": "subscribe", "data": good}))
            await next_of(ws, {"subscribed"})
            for data, said in (
                ({"interval": 10}, "interval is milliseconds"),
                ({"interval": "fast"}, "interval is milliseconds"),
                ({"events": "process_status"}, "events must be a list"),
                ({"processes": [1, 2]}, "processes must be a list of process names"),
                ({"colour": "red"}, "unknown field 'colour'"),
                ("not an object", '"data" must be an object'),
            ):
                await ws.send(json.dumps({"type": "subscribe", "data": data}))
                reply = await next_of(ws, {"error", "subscribed"})
                assert reply["type"] == "error" and said in reply["data"]["message"], data
            pmd.run("stop", "web-api")
            message = await recv(ws)  # still only process_status
            assert message["type"] == "process_status"

    asyncio.run(main())


def test_log_messages_through_a_subscription(pmd: Pmd, web: Callable[..., Web]) -> None:
    """api/websocket-api.md, Log Messages: process, instance, level, message, stream."""
    pid = pmd.start(child("park.py"), "--interpreter", PY, "-n", "web-api")["processes"][0]["pid"]
    w = web("--api-key", KEY)

    async def main() -> None:
        async with websockets.connect(w.ws_url, additional_headers={"X-API-Key": KEY}) as ws:
            request = {"events": ["log_message"], "processes": ["web-api"]}
            await ws.send(json.dumps({"type": "subscribe", "data": request}))
            assert (await next_of(ws, {"subscribed"}))["data"]["logs"] == ["web-api"]
            line: dict[str, Any] = {}
            for _ in range(30):  # the follower starts after the answer: signal until it reads
                os.kill(pid, signal.SIGUSR1)
                try:
                    line = (await asyncio.wait_for(next_of(ws, {"log_message"}), 1.0))["data"]
                    break
                except TimeoutError:
                    continue
            assert (line["process"], line["instance"], line["stream"], line["level"]) == (
                "web-api",
                0,
                "stdout",
                "info",
            )
            assert line["message"] == "got SIGUSR1"

    asyncio.run(main())


def test_auth_messages_count_as_failed_authentications(pmd: Pmd, web: Callable[..., Web]) -> None:
    """Guessing keys over /ws is limited like over HTTP: after 10 wrong keys, 429-like."""
    w = web("--api-key", KEY)

    async def main() -> None:
        async with websockets.connect(w.ws_url) as ws:
            for i in range(10):
                await ws.send(json.dumps({"type": "auth", "api_key": f"guess-{i}"}))
                assert (await next_of(ws, {"auth"}))["data"]["authenticated"] is False
            await ws.send(json.dumps({"type": "auth", "api_key": KEY}))
            refused = await next_of(ws, {"error", "auth"})
            assert refused["type"] == "error" and "too many failed" in refused["data"]["message"]

    asyncio.run(main())
    throttled = httpx.get(w.url + "/api/processes", headers={"X-API-Key": KEY})
    assert throttled.status_code == 429  # the same count as HTTP's
