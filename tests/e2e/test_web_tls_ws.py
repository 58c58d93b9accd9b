"""TLS and the WebSocket stream of `pmdaemon web` (issue 3, items 5 and 6)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import trustme
import websockets

from helpers import Pmd, Web, child

PY = sys.executable
KEY = "k-ws"


def make_cert(tmp_path: Path) -> tuple[Path, Path, Path]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    return ca_file, cert_file, key_file


def test_tls_serves_https_and_wss(pmd: Pmd, web: Callable[..., Web], tmp_path: Path) -> None:
    ca, cert, key = make_cert(tmp_path)
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "p")
    w = web("--api-key", KEY, "--tls-cert", str(cert), "--tls-key", str(key))
    assert w.url.startswith("https://")
    result = subprocess.run(
        ["curl", "-s", "--cacert", str(ca), "-H", f"X-API-Key: {KEY}", f"{w.url}/api/processes"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert json.loads(result.stdout)[0]["name"] == "p"
    headers = httpx.get(f"{w.url}/", verify=ssl.create_default_context(cafile=str(ca))).headers
    assert headers["strict-transport-security"].startswith("max-age=")

    async def wss() -> list[str]:
        context = ssl.create_default_context(cafile=str(ca))
        async with websockets.connect(w.ws_url, ssl=context) as ws:
            return [json.loads(await ws.recv())["type"] for _ in range(2)]

    assert asyncio.run(wss()) == ["process_list", "system_metrics"]
    # Plain HTTP to the TLS port does not get an API answer.
    plain = w.url.replace("https://", "http://")
    try:
        response = httpx.get(f"{plain}/api/processes", headers={"X-API-Key": KEY}, timeout=10)
    except httpx.HTTPError:
        pass
    else:
        assert response.status_code >= 400 and "processes" not in response.text


def test_bad_tls_files_are_refused(pmd: Pmd, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "pmdaemon"),
            "web",
            "-p",
            "0",
            "--api-key",
            KEY,
            "--tls-cert",
            str(junk),
            "--tls-key",
            str(junk),
        ],
        env=pmd.env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    assert "TLS" in result.stderr and "Traceback" not in result.stderr


async def recv(ws: Any, timeout: float = 10) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))  # type: ignore[no-any-return]


def parse_ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def test_ws_snapshots_then_state_changes(pmd: Pmd, web: Callable[..., Web]) -> None:
    pid = pmd.start(child("park.py"), "--interpreter", PY, "-n", "p")["processes"][0]["pid"]
    w = web("--api-key", KEY)

    async def main() -> list[dict[str, Any]]:
        async with websockets.connect(w.ws_url) as ws:  # public: no key
            first, second = await recv(ws), await recv(ws)
            assert first["type"] == "process_list" and second["type"] == "system_metrics"
            assert first["data"]["processes"][0]["pid"] == pid
            assert first["timestamp"].endswith("Z")
            os.kill(pid, signal.SIGKILL)
            seen = []
            while not (seen and seen[-1]["data"]["status"] == "online"):
                message = await recv(ws)
                if message["type"] == "process_status":
                    seen.append(message)
            return seen

    seen = asyncio.run(main())
    assert [m["data"]["status"] for m in seen] == ["restarting", "starting", "online"]
    assert seen[0]["data"]["reason"] == "killed by SIGKILL"
    assert seen[-1]["data"]["pid"] not in (None, pid)
    assert set(seen[0]["data"]) >= {
        "id",
        "name",
        "status",
        "previous_status",
        "pid",
        "port",
        "reason",
    }
    # Crash to online again, as stamped by the daemon itself: well within a second.
    assert parse_ts(seen[-1]["timestamp"]) - parse_ts(seen[0]["timestamp"]) < 1.0


def test_ws_periodic_metrics_and_messages(pmd: Pmd, web: Callable[..., Web]) -> None:
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "p")
    w = web("--api-key", KEY)

    async def main() -> None:
        async with websockets.connect(w.ws_url) as ws:
            await recv(ws)
            await recv(ws)
            types: set[str] = set()
            while not {"process_metrics", "system_metrics"} <= types:
                message = await recv(ws)
                types.add(message["type"])
                if message["type"] == "process_metrics":
                    entry = message["data"]["processes"][0]
                    assert set(entry) >= {
                        "id",
                        "name",
                        "cpu",
                        "memory",
                        "uptime",
                        "restarts",
                    }
            for raw, expected in (
                ("not json", "error"),
                ('{"type": 5}', "error"),
                ('{"type": "stop"}', "error"),
                ('{"type": "ping"}', "pong"),
                ('{"type": "auth", "api_key": "wrong"}', "auth"),
            ):
                await ws.send(raw)
                reply = await recv(ws)
                while reply["type"] in ("process_metrics", "system_metrics"):
                    reply = await recv(ws)
                assert reply["type"] == expected, raw
                if expected == "auth":
                    assert reply["data"]["authenticated"] is False
            await ws.send(json.dumps({"type": "auth", "api_key": KEY}))
            reply = await recv(ws)
            while reply["type"] != "auth":
                reply = await recv(ws)
            assert reply["data"]["authenticated"] is True

    asyncio.run(main())
    assert pmd.proc("p")["status"] == "online"  # nothing a client sent changed anything


def test_ws_auth_requires_the_key_for_every_connection(pmd: Pmd, web: Callable[..., Web]) -> None:
    w = web("--api-key", KEY, "--ws-auth")

    async def main() -> None:
        try:
            async with websockets.connect(w.ws_url) as ws:
                await recv(ws)
        except websockets.InvalidStatus as exc:
            assert exc.response.status_code == 401
        else:
            raise AssertionError("an unauthenticated /ws connection was accepted")
        async with websockets.connect(w.ws_url, additional_headers={"X-API-Key": KEY}) as ws:
            assert (await recv(ws))["type"] == "process_list"
        async with websockets.connect(w.ws_url + f"?api_key={KEY}") as ws:
            assert (await recv(ws))["type"] == "process_list"

    asyncio.run(main())


def key_protocol(key: str) -> websockets.Subprotocol:
    encoded = base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")
    return websockets.Subprotocol(f"pmdaemon.key.{encoded}")


def test_a_browser_presents_the_key_as_a_subprotocol(pmd: Pmd, web: Callable[..., Web]) -> None:
    """A browser can set no header in the handshake: the key rides in the subprotocol list
    beside ``pmdaemon``, which the server picks; a wrong or garbled one is refused."""
    pmd.start(
        child("ticker.py"), "--interpreter", sys.executable, "-n", "tick", "--time", "--", "0.05"
    )
    w = web("--api-key", KEY, "--ws-auth")
    chosen = websockets.Subprotocol("pmdaemon")

    async def refused(protocols: list[websockets.Subprotocol]) -> int:
        try:
            async with websockets.connect(w.ws_url, subprotocols=protocols) as ws:
                await recv(ws)
        except websockets.InvalidStatus as exc:
            return exc.response.status_code
        raise AssertionError(f"accepted with {protocols}")

    async def main() -> None:
        async with websockets.connect(w.ws_url, subprotocols=[chosen, key_protocol(KEY)]) as ws:
            assert ws.subprotocol == "pmdaemon"
            assert (await recv(ws))["type"] == "process_list"
            await ws.send(json.dumps({"type": "subscribe", "logs": ["tick"]}))
            while (reply := await recv(ws))["type"] != "subscribed":
                assert reply["type"] != "error", reply
            while (reply := await recv(ws))["type"] != "log_message":
                pass
            assert reply["data"]["name"] == "tick"
            # the keeper's stamp (--time) comes apart from the app's own text
            assert reply["data"]["timestamp"].startswith(time.strftime("%Y-"))
            assert reply["data"]["message"].split()[0] == str(pmd.proc("tick")["pid"])
        assert await refused([chosen, key_protocol("wrong")]) == 401
        assert await refused([chosen, websockets.Subprotocol("pmdaemon.key.%%%")]) == 401
        assert await refused([chosen]) == 401

    asyncio.run(main())


def slow_reader(url: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect((host, int(port)))
    sock.sendall(
        f"GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    return sock


async def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """Drain what the server buffered for ``sock``; True once it reaches EOF."""
    sock.setblocking(False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if sock.recv(65536) == b"":
                return True
        except BlockingIOError:
            await asyncio.sleep(0.05)  # sleep-ok: the poll interval of a deadline loop
        except ConnectionResetError:
            return True
    return False


def test_idle_clients_and_a_slow_reader_never_delay_rest(pmd: Pmd, web: Callable[..., Web]) -> None:
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "p")
    w = web("--api-key", KEY)

    async def main() -> list[float]:
        idle = [await websockets.connect(w.ws_url, max_queue=None) for _ in range(200)]
        slow = slow_reader(w.url)
        latencies: list[float] = []
        async with httpx.AsyncClient(base_url=w.url, headers={"X-API-Key": KEY}) as client:
            for _ in range(20):  # each restart: three state changes to every client
                assert (await client.post("/api/processes/p/restart")).status_code == 200
                began = time.perf_counter()
                response = await client.get("/api/processes")
                latencies.append(time.perf_counter() - began)
                assert response.status_code == 200
        states = {ws.state.name for ws in idle}
        for ws in idle:
            await ws.close()
        slow.close()
        assert states == {"OPEN"}
        return latencies

    latencies = asyncio.run(main())
    assert max(latencies) < 2.0, latencies  # generous: REST never waits on WebSocket clients


def test_a_client_that_stops_reading_is_dropped(pmd: Pmd, web: Callable[..., Web]) -> None:
    for i in range(20):
        pmd.start(child("park.py"), "--interpreter", PY, "-n", f"p{i}")
    w = web("--api-key", KEY)

    async def main() -> tuple[bool, set[str]]:
        idle = [await websockets.connect(w.ws_url, max_queue=None) for _ in range(5)]
        slow = slow_reader(w.url)
        async with httpx.AsyncClient(base_url=w.url, headers={"X-API-Key": KEY}) as client:
            # 60 state changes a round; the slow reader's socket buffers fill, its sends
            # stall, and it is dropped: the daemon then counts one event subscriber less.
            for _ in range(60):
                await client.post("/api/processes/all/restart")
                if pmd.json("ping")["event_subscribers"] == len(idle):
                    break
        assert pmd.json("ping")["event_subscribers"] == len(idle)
        dropped = await closed_by_server(slow, 30)
        slow.close()
        states = {ws.state.name for ws in idle}
        for ws in idle:
            await ws.close()
        return dropped, states

    dropped, states = asyncio.run(main())
    assert dropped, "the slow reader was never dropped"
    assert states == {"OPEN"}


def test_ws_log_subscriptions_need_the_key(pmd: Pmd, web: Callable[..., Web]) -> None:
    pid = pmd.start(child("park.py"), "--interpreter", PY, "-n", "p")["processes"][0]["pid"]
    w = web("--api-key", KEY)

    async def next_of(ws: Any, kinds: set[str]) -> dict[str, Any]:
        while True:
            message = await recv(ws)
            if message["type"] in kinds:
                return message

    async def main() -> None:
        async with websockets.connect(w.ws_url) as ws:  # public, no key
            await ws.send(json.dumps({"type": "subscribe", "logs": ["p"]}))
            refused = await next_of(ws, {"error", "subscribed"})
            assert refused["type"] == "error" and "API key" in refused["data"]["message"]
            os.kill(pid, signal.SIGUSR1)  # a log line that must not reach this client
            await ws.send(json.dumps({"type": "auth", "api_key": KEY}))
            assert (await next_of(ws, {"auth"}))["data"]["authenticated"] is True
            await ws.send(json.dumps({"type": "subscribe", "logs": ["p", "nope"]}))
            assert "nope" in (await next_of(ws, {"error", "subscribed"}))["data"]["message"]
            await ws.send(json.dumps({"type": "subscribe", "logs": ["p"]}))
            assert (await next_of(ws, {"subscribed"}))["data"]["logs"] == ["p"]
            began = time.monotonic()
            os.kill(pid, signal.SIGUSR1)
            line = await next_of(ws, {"log_message"})
            assert time.monotonic() - began < 1.5  # polled every 100 ms
            assert line["data"] == {
                "id": 0,
                "name": "p",
                "type": "out",
                "message": "got SIGUSR1",
                "timestamp": None,
                "process": "p",
                "instance": 0,
                "stream": "stdout",
                "level": "info",
            }
            await ws.send(json.dumps({"type": "unsubscribe", "logs": ["p"]}))
            await next_of(ws, {"unsubscribed"})
            # The public stream keeps working.
            os.kill(pid, signal.SIGKILL)
            status = await next_of(ws, {"process_status"})
            assert status["data"]["name"] == "p"

    asyncio.run(main())


def test_ws_subscriptions_without_a_key_configured(pmd: Pmd, web: Callable[..., Web]) -> None:
    pid = pmd.start(child("park.py"), "--interpreter", PY, "-n", "p")["processes"][0]["pid"]
    w = web()

    async def main() -> dict[str, Any]:
        async with websockets.connect(w.ws_url) as ws:
            await ws.send(json.dumps({"type": "subscribe", "logs": ["all"]}))
            while (message := await recv(ws))["type"] != "subscribed":
                pass
            os.kill(pid, signal.SIGUSR1)
            while (message := await recv(ws))["type"] != "log_message":
                pass
            return message

    assert asyncio.run(main())["data"]["message"] == "got SIGUSR1"
