"""Health checks that run, restarts of unhealthy apps, and --wait-ready (issue 7)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import websockets
from test_clusters import free_range

from helpers import Pmd, Web, alive, child, wait_until

PY = sys.executable


def health_app(pmd: Pmd, status: Path, interval: str, retries: str, *flags: str) -> None:
    """Start health_server.py as "h" on a free port, checked over HTTP every ``interval``;
    its /health answers the status written in ``status`` (200 to begin with)."""
    status.write_text("200")
    port = free_range(1)
    pmd.start(child("health_server.py"), "--interpreter", PY, "-n", "h", "-p", str(port),
              "--health-check-url", f"http://127.0.0.1:{port}/health",
              "--health-check-interval", interval, "--health-check-retries", retries,
              *flags, "--", str(status))  # fmt: skip


def checks_logged(pmd: Pmd, name: str) -> list[str]:
    log = pmd.home / "logs" / f"{name}-out.log"
    return [line for line in log.read_text().splitlines() if line.startswith("check ")]


def test_http_check_healthy_unhealthy_restart_healthy(pmd: Pmd, tmp_path: Path) -> None:
    status = tmp_path / "status"
    health_app(pmd, status, "300ms", "3")
    info = wait_until(
        lambda: (p := pmd.proc("h"))["health_status"] == "healthy" and p, what="healthy"
    )
    assert info["health_check"]["consecutive_failures"] == 0
    assert info["health_check"]["response_time"] is not None
    old_pid = info["pid"]
    before = len(checks_logged(pmd, "h"))
    status.write_text("500")
    restarted = wait_until(
        lambda: (p := pmd.proc("h"))["restarts"] == 1 and p, timeout=20, what="restarted for health"
    )
    assert restarted["last_restart_reason"] == "health check failed 3 times: HTTP 500"
    # Exactly `retries` failing checks reached the old run before the restart.
    old_run = checks_logged(pmd, "h")
    failures = [c for c in old_run[before:] if c == "check 500"]
    assert len(failures) >= 3
    status.write_text("200")
    back = wait_until(
        lambda: (p := pmd.proc("h"))["health_status"] == "healthy" and p,
        timeout=20,
        what="healthy again",
    )
    assert back["pid"] != old_pid and back["restarts"] == 1
    assert "healthy" in pmd.run("list").stdout


def test_exactly_retries_failures_make_unhealthy(pmd: Pmd, tmp_path: Path) -> None:
    status = tmp_path / "status"
    health_app(pmd, status, "400ms", "4")
    wait_until(lambda: pmd.proc("h")["health_status"] == "healthy", what="healthy")
    status.write_text("503")
    seen = []

    def observe() -> bool:
        p = pmd.proc("h")
        seen.append(
            (
                p["health_status"],
                p["health_check"] and p["health_check"].get("consecutive_failures"),
            )
        )
        return p["restarts"] == 1

    wait_until(observe, timeout=20, what="restart")
    failures_while_healthy = [f for s, f in seen if s == "healthy" and f]
    assert max(failures_while_healthy, default=0) <= 3  # still healthy at 3 failures


def test_script_checks_timeouts_and_exit_codes(pmd: Pmd, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    pmd.start(
        child("park.py"),
        "--interpreter",
        PY,
        "-n",
        "hang",
        "--health-check-script",
        f"{child('hang_check.sh')} {pids}",
        "--health-check-timeout",
        "300ms",
        "--health-check-interval",
        "200ms",
    )
    info = wait_until(
        lambda: (p := pmd.proc("hang"))["health_check"]["last_error"] and p,
        what="a timed-out check",
    )
    assert "no exit within 0.3s (killed)" in info["health_check"]["last_error"]
    started = wait_until(
        lambda: pids.exists() and [int(x) for x in pids.read_text().split()], what="check pids"
    )
    wait_until(lambda: not any(alive(pid) for pid in started), what="check killed with child")
    pmd.start(
        child("park.py"),
        "--interpreter",
        PY,
        "-n",
        "fail",
        "--health-check-script",
        f"{child('fail_check.sh')} 3",
        "--health-check-interval",
        "200ms",
    )
    info = wait_until(
        lambda: (p := pmd.proc("fail"))["health_check"]["last_error"] and p, what="a failing check"
    )
    assert info["health_check"]["last_error"] == "exit code 3"
    assert info["health_check"]["output"] == ["disk almost full"]
    text = pmd.run("info", "fail").stdout
    assert "exit code 3" in text and "disk almost full" in text


def test_wait_ready_returns_once_the_app_serves(pmd: Pmd, tmp_path: Path) -> None:
    port = free_range(1)
    began = time.monotonic()
    result = pmd.run(
        "start",
        child("health_server.py"),
        "--interpreter",
        PY,
        "-n",
        "slow",
        "-p",
        str(port),
        "--health-check-url",
        f"http://127.0.0.1:{port}/health",
        "--health-check-interval",
        "5s",
        "--wait-ready",
        "--",
        str(tmp_path / "status"),
        "2",
    )
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - began >= 2.0
    assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200  # serving now
    assert pmd.proc("slow")["health_status"] == "healthy"


def test_wait_ready_times_out_with_the_reason_and_the_log(pmd: Pmd) -> None:
    port = free_range(1)
    began = time.monotonic()
    result = pmd.run(
        "start",
        child("spew.py"),
        "--interpreter",
        PY,
        "-n",
        "never",
        "--health-check-url",
        f"http://127.0.0.1:{port}/health",
        "--wait-ready",
        "--wait-timeout",
        "2s",
        "--",
        "3",
        check=False,
    )
    assert result.returncode == 1
    assert time.monotonic() - began >= 2.0
    assert "never not ready within 2s" in result.stderr
    assert "Connection refused" in result.stderr
    assert "never out | line 2" in result.stderr and "never err | an error line" in result.stderr


def test_wait_ready_without_a_check_waits_min_uptime(pmd: Pmd) -> None:
    result = pmd.run(
        "start",
        child("exit_code.py"),
        "--interpreter",
        PY,
        "-n",
        "dies",
        "--min-uptime",
        "1s",
        "--max-restarts",
        "1",
        "--wait-ready",
        "--",
        "1",
        check=False,
    )
    assert result.returncode == 1 and "dies is errored" in result.stderr
    began = time.monotonic()
    pmd.run(
        "start",
        child("park.py"),
        "--interpreter",
        PY,
        "-n",
        "ok",
        "--min-uptime",
        "1500ms",
        "--wait-ready",
    )
    assert time.monotonic() - began >= 1.5


def test_wait_ready_waits_for_every_instance(pmd: Pmd, tmp_path: Path) -> None:
    first = free_range(3)
    began = time.monotonic()
    pmd.run(
        "start",
        child("health_server.py"),
        "--interpreter",
        PY,
        "-n",
        "web",
        "-i",
        "3",
        "-p",
        f"{first}-{first + 2}",
        "--health-check-url",
        "http://127.0.0.1:$PORT/health",  # each instance's own port
        "--wait-ready",
        "--",
        str(tmp_path / "status"),
        "1",
    )
    assert time.monotonic() - began >= 1.0
    assert [p["health_status"] for p in pmd.list()] == ["healthy"] * 3
    for i in range(3):  # each instance was checked on its own port
        assert checks_logged(pmd, f"web-{i}")


def test_file_wait_ready(pmd: Pmd, tmp_path: Path) -> None:
    port = free_range(1)
    path = tmp_path / "eco.json"
    path.write_text(
        json.dumps(
            {
                "apps": [
                    {
                        "name": "api",
                        "script": child("health_server.py"),
                        "interpreter": PY,
                        "port": port,
                        "args": [str(tmp_path / "status"), "1"],
                        "wait_ready": True,
                        "wait_timeout": "20s",
                        "health_check": {"type": "http", "url": f"http://127.0.0.1:{port}/health"},
                    }
                ]
            }
        )
    )
    result = pmd.run("start", str(path))
    assert "validated" not in result.stderr  # health checks act now: no warning
    assert pmd.proc("api")["health_status"] == "healthy"


def test_health_updates_reach_websocket_clients(
    pmd: Pmd, web: Callable[..., Web], tmp_path: Path
) -> None:
    status = tmp_path / "status"
    w = web("--api-key", "k")
    # --no-wait: the client must connect before the first check answers (in 300 ms).
    health_app(pmd, status, "300ms", "2", "--no-wait")

    async def main() -> list[dict[str, Any]]:
        updates: list[dict[str, Any]] = []
        async with websockets.connect(w.ws_url) as ws:
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 20))
                if message["type"] != "health_update":
                    continue
                updates.append(message["data"])
                if message["data"]["status"] == "healthy" and len(updates) == 1:
                    status.write_text("500")
                if message["data"]["status"] == "unhealthy":
                    return updates

    updates = asyncio.run(main())
    assert [u["status"] for u in updates] == ["healthy", "unhealthy"]
    assert updates[1]["previous_status"] == "healthy" and updates[1]["process"] == "h"
    assert updates[1]["check_type"] == "http"
    assert updates[1]["error"] == "HTTP 500"
