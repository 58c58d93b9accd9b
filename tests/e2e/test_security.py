"""Secrets stay home (issue 9 item 5), the audit log (item 5), and the local channels are
for their owner only (item 4)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from helpers import Pmd, Web, child, wait_until

PY = sys.executable
KEY = "audit-test-key-0123456789"
READ_KEY = "read-only-key-9876543210"
SECRET = "Sup3rS3cr3t-token-42"
NOBODY = 65534


def test_secrets_never_cross_tcp_or_the_public_stream(
    pmd: Pmd, web: Callable[..., Web], home: Path
) -> None:
    pmd.env["SHELL_SECRET"] = SECRET + "-shell"
    work = home.parent  # park.py appends its PID to the file named by its first argument
    pmd.start(
        child("park.py"),
        "--interpreter",
        PY,
        "--cwd",
        str(work),
        "-n",
        "app",
        "-e",
        f"DB_PASS={SECRET}-env",
        "--health-check-script",
        f"true --token={SECRET}-check",
        "--",
        f"--token={SECRET}-arg",
    )
    pmd.start(
        f"{PY} {child('park.py')} --password {SECRET}-cmd",
        "--cwd",
        str(work),
        "-n",
        "cmd",
        "--health-check-url",
        f"http://user:{SECRET}-userinfo@127.0.0.1:9/health?token={SECRET}-url",
        "--health-check-interval",
        "1m",
    )
    # The owner sees everything through the Unix socket: the test would notice a leak.
    assert f"--token={SECRET}-arg" in pmd.run("info", "app").stdout
    w = web("--api-key", KEY)
    texts: list[str] = []

    async def watch(stop: asyncio.Event) -> None:
        async with websockets.connect(w.ws_url) as ws:  # the public stream: no key
            while not stop.is_set():
                try:
                    texts.append(str(await asyncio.wait_for(ws.recv(), 0.2)))
                except TimeoutError:
                    continue

    async def exercise() -> None:
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch(stop))
        headers = {"X-API-Key": KEY}
        async with httpx.AsyncClient(base_url=w.url, headers=headers, timeout=60) as client:
            gets = ["/", "/api/processes", "/api/system", "/api/status", "/api/openapi.json"]
            for ident in ("app", "cmd", "0", "1", "all"):
                gets += [f"/api/processes/{ident}", f"/api/processes/{ident}/logs"]
                gets += [f"/api/logs/{ident}?lines=100"]
            for path in gets:
                response = await client.get(path)
                texts.append(response.text + str(response.headers))
            for action in ("restart", "stop", "start"):
                response = await client.post(f"/api/processes/all/{action}")
                texts.append(response.text)
            for path in gets:
                texts.append((await client.get(path)).text)
        await asyncio.sleep(2.5)  # sleep-ok: let the stream carry a metrics broadcast
        stop.set()
        await watcher

    asyncio.run(exercise())
    assert len(texts) > 40 and any('"process_metrics"' in t for t in texts)
    leaks = [t[:300] for t in texts if SECRET in t]
    assert not leaks, leaks
    detail = httpx.get(f"{w.url}/api/processes/app", headers={"X-API-Key": KEY}).json()
    assert detail["config"]["args"] == ["<hidden>"]
    assert detail["config"]["health_check"]["script"] == "true <hidden>"
    cmd = httpx.get(f"{w.url}/api/processes/cmd", headers={"X-API-Key": KEY}).json()
    assert cmd["config"]["script"] == f"{PY} <hidden>"
    assert cmd["config"]["health_check"]["url"] == "http://127.0.0.1:9/health?<hidden>"


def test_the_audit_log_has_a_line_per_mutating_call_and_no_key(
    pmd: Pmd, web: Callable[..., Web], home: Path
) -> None:
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "app")
    w = web("--api-key", KEY, "--read-only-api-key", READ_KEY)
    calls = [
        ("POST", "/api/processes/app/restart", KEY, 200),
        ("POST", "/api/processes/app/stop", KEY, 200),
        ("POST", "/api/processes/app/start", KEY, 200),
        ("POST", "/api/processes/app/restart", READ_KEY, 403),
        ("POST", "/api/processes/app/stop", "wrong-key", 401),
        ("POST", "/api/processes/nope/stop", KEY, 404),
        ("DELETE", "/api/processes/app?api_key=" + KEY, KEY, 200),
    ]
    with httpx.Client(base_url=w.url) as client:
        for method, path, key, status in calls:
            response = client.request(method, path, headers={"X-API-Key": key})
            assert response.status_code == status, (method, path, response.text)
            client.get("/api/processes", headers={"X-API-Key": key})  # reads: not audited
    audit = home / "audit.log"
    assert stat.S_IMODE(audit.stat().st_mode) == 0o600
    text = audit.read_text()
    assert KEY not in text and READ_KEY not in text and "wrong-key" not in text
    entries = [json.loads(line) for line in text.splitlines()]
    assert len(entries) == len(calls)
    for entry, (method, path, key, status) in zip(entries, calls, strict=True):
        assert entry["action"] == f"{method} {path.split('?')[0]}"
        assert entry["status"] == status and entry["client"] == "127.0.0.1"
        assert entry["target"] == path.split("/")[3].split("?")[0]
        assert entry["time"] and entry["result"] == ("ok" if status == 200 else "refused")
        expected = hashlib.sha256(key.encode()).hexdigest()[:8] if status != 401 else None
        assert entry["key_id"] == expected
    assert [e["auth"] for e in entries[3:5]] == ["forbidden", "invalid"]


@pytest.fixture
def home() -> Iterator[Path]:
    """A home another user could reach if its mode allowed it (pytest's own temporary
    directories are closed to others, which would hide what is tested here)."""
    base = Path(tempfile.mkdtemp(prefix="pmd-sec-"))
    os.chmod(base, 0o711)
    yield base / "home"
    subprocess.run(["rm", "-rf", str(base)], check=False)


def connect_as_nobody(path: Path, payload: bytes, kind: str = "stream") -> str:
    """What a process running as uid 65534 gets from the socket at ``path``."""
    code = f"""
import socket, sys
kind = socket.SOCK_STREAM if {kind!r} == "stream" else socket.SOCK_SEQPACKET
s = socket.socket(socket.AF_UNIX, kind)
try:
    s.connect({str(path)!r})
except OSError as exc:
    print("connect failed:", exc.strerror); sys.exit(0)
s.settimeout(10)
try:
    s.send({payload!r})
    data = s.recv(65536)
except OSError as exc:
    print("closed:", exc.strerror); sys.exit(0)
print("answer:" if data else "closed: no answer", data[:200])
"""

    def drop() -> None:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)

    result = subprocess.run(
        ["/usr/bin/python3", "-c", code],
        preexec_fn=drop,
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another user")
def test_local_sockets_refuse_other_users_even_when_widened(pmd: Pmd, home: Path) -> None:
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "app")
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    sock, keeper = home / "daemon.sock", home / "logkeeper.sock"
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert stat.S_IMODE(keeper.stat().st_mode) == 0o600
    request = b"GET /api/processes HTTP/1.1\r\nHost: x\r\n\r\n"
    # As created: others cannot even reach the sockets.
    assert connect_as_nobody(sock, request).startswith("connect failed")
    # Widened by someone: the daemon checks the peer's uid and closes without a word.
    os.chmod(home, 0o755)
    os.chmod(sock, 0o777)
    os.chmod(keeper, 0o777)
    assert connect_as_nobody(sock, request).startswith("closed")
    assert connect_as_nobody(keeper, b'{"op": "stats"}', "seqpacket").startswith("closed")
    flush = json.dumps({"op": "flush", "paths": [str(home / "logs" / "app-out.log")]})
    connect_as_nobody(keeper, flush.encode(), "seqpacket")
    # The owner is still served, and nothing was done for the other user.
    wait_until(lambda: pmd.proc("app")["status"] == "online")
    assert "ready" in (home / "logs" / "app-out.log").read_text()
