"""PMDaemon's REST API as api/rest-api.md and features/web-api.md of entrepeneur4lyf/pmdaemon
document it, against the real daemon and `pmdaemon web` on 127.0.0.1."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import httpx

from helpers import Pmd, Web, child, free_range, wait_until

PY = sys.executable
KEY = "compat-key-0123456789abcdef"
H = {"X-API-Key": KEY}


def test_root_status_and_list(pmd: Pmd, web: Callable[..., Web]) -> None:
    """api/rest-api.md: Root Endpoint, List Processes (status and name filters), Status."""
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "web-app")
    w = web("--api-key", KEY)
    root = httpx.get(w.url + "/").json()
    assert root["name"] == "PMDaemon" and root["status"] == "running"
    assert root["endpoints"] == {
        "processes": "/api/processes",
        "system": "/api/system",
        "status": "/api/status",
        "websocket": "/ws",
    }
    listed = httpx.get(w.url + "/api/processes?status=online&name=web-app", headers=H).json()
    assert [p["name"] for p in listed] == ["web-app"]
    for key in ("id", "name", "status", "pid", "port", "cpu_usage", "memory_usage", "uptime"):
        assert key in listed[0]
    assert {"restarts", "health_status"} <= set(listed[0])
    status = httpx.get(w.url + "/api/status", headers=H).json()
    assert status["status"] == "ok" and status["version"] == root["version"]


def test_process_detail_shape(pmd: Pmd, web: Callable[..., Web]) -> None:
    """api/rest-api.md, Get Process Details: config.env as an object, health_check with
    enabled/check_type/url/status/last_check/response_time, logs.out_file/error_file;
    200 even when the health URL holds $PORT. Values of env stay hidden over TCP."""
    port = free_range(1)
    pmd.start(
        child("http_app.py"),
        "--interpreter",
        PY,
        "-n",
        "web-app",
        "--port",
        str(port),
        "-e",
        "NODE_ENV=production",
        "--health-check-url",
        "http://127.0.0.1:$PORT/health?token=s3cret",
        "--health-check-interval",
        "1s",
    )
    w = web("--api-key", KEY)
    wait_until(lambda: pmd.proc("web-app")["health_status"] == "healthy", what="healthy")
    response = httpx.get(w.url + "/api/processes/web-app", headers=H)
    assert response.status_code == 200, response.text
    detail = response.json()
    assert detail["config"]["env"] == {"NODE_ENV": "<hidden>"}
    check = detail["health_check"]
    assert check["enabled"] is True and check["check_type"] == "http"
    assert check["url"] == "http://127.0.0.1:$PORT/health?<hidden>"
    assert check["status"] == "healthy" and check["last_check"].endswith("Z")
    assert isinstance(check["response_time"], int)
    assert detail["logs"]["out_file"].endswith("web-app-out.log")
    assert detail["logs"]["error_file"].endswith("web-app-error.log")
    assert "s3cret" not in response.text and "production" not in response.text


def test_system_metrics_names(pmd: Pmd, web: Callable[..., Web]) -> None:
    """api/rest-api.md, System Metrics (uptime, cpu.load_average, memory.usage_percent,
    disk.usage_percent, processes) and features/web-api.md's load.one/five/fifteen."""
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "a")
    w = web("--api-key", KEY)
    system = httpx.get(w.url + "/api/system", headers=H).json()
    assert isinstance(system["uptime"], str) and system["uptime"]
    assert len(system["cpu"]["load_average"]) == 3 and system["cpu"]["cores"] >= 1
    assert set(system["load"]) == {"one", "five", "fifteen"}
    assert 0 < system["memory"]["usage_percent"] < 100
    assert {"total", "used", "free", "available"} <= set(system["memory"])
    assert 0 < system["disk"]["usage_percent"] <= 100
    assert {"total": 1, "online": 1, "stopped": 0, "errored": 0}.items() <= system[
        "processes"
    ].items()


def test_logs_route_and_stdout_stderr_types(pmd: Pmd, web: Callable[..., Web]) -> None:
    """features/web-api.md: GET /api/logs/{name}?lines=50&type=stdout, and the process."""
    pid = pmd.start(child("park.py"), "--interpreter", PY, "-n", "web-api")["processes"][0]["pid"]
    w = web("--api-key", KEY)
    wait_until(lambda: "ready" in pmd.run("logs", "web-api").stdout, what="a line")
    out = httpx.get(w.url + "/api/logs/web-api?lines=50&type=stdout", headers=H).json()
    assert out["process"] == "web-api" and out["total_lines"] == 1
    assert out["logs"][0]["message"] == f"ready pid={pid}" and out["logs"][0]["type"] == "out"
    err = httpx.get(w.url + "/api/processes/web-api/logs?type=stderr", headers=H).json()
    assert err["logs"] == []
    bad = httpx.get(w.url + "/api/logs/web-api?type=journal", headers=H)
    assert bad.status_code == 400 and "stdout, stderr" in bad.json()["message"]


def test_health_route(pmd: Pmd, web: Callable[..., Web]) -> None:
    """features/web-api.md: GET /api/processes/{name}/health."""
    pmd.start(
        child("park.py"),
        "--interpreter",
        PY,
        "-n",
        "web-api",
        "--health-check-script",
        "true",
        "--health-check-interval",
        "1s",
    )
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "plain")
    w = web("--api-key", KEY)
    wait_until(lambda: pmd.proc("web-api")["health_status"] == "healthy", what="healthy")
    body = httpx.get(w.url + "/api/processes/web-api/health", headers=H).json()
    assert body["process"] == "web-api"
    health = body["health"]
    assert health["status"] == "healthy" and health["check_type"] == "script"
    assert health["total_checks"] >= 1 and health["successful_checks"] >= 1
    assert health["success_rate"] == 100.0
    plain = httpx.get(w.url + "/api/processes/plain/health", headers=H).json()
    assert plain == {"process": "plain", "id": 1, "health": None}
    assert httpx.get(w.url + "/api/processes/nope/health", headers=H).status_code == 404


def test_restart_body_port_and_instances(pmd: Pmd, web: Callable[..., Web]) -> None:
    """features/web-api.md, Restart a Process: {"port": "3002", "instances": 2}; over TCP a
    cluster may shrink, not grow (docs/compat.md)."""
    first = free_range(3)
    pmd.start(
        child("http_app.py"), "--interpreter", PY, "-n", "web", "-i", "1", "--port", str(first)
    )
    pmd.start(
        child("http_app.py"),
        "--interpreter",
        PY,
        "-n",
        "api",
        "-i",
        "2",
        "--port",
        f"{first + 1}-{first + 2}",
    )
    w = web("--api-key", KEY)
    done = httpx.post(w.url + "/api/processes/api/restart", headers=H, json={"instances": 1})
    assert done.status_code == 200, done.text
    assert [p["name"] for p in done.json()["processes"]] == ["api-0"]
    same = httpx.post(w.url + "/api/processes/api/restart", headers=H, json={"instances": 1})
    assert [p["name"] for p in same.json()["processes"]] == ["api-0"]
    single = httpx.post(w.url + "/api/processes/web/restart", headers=H, json={"instances": 2})
    assert single.status_code == 400 and "started as one process" in single.json()["message"]
    grow = httpx.post(w.url + "/api/processes/api/restart", headers=H, json={"instances": 2})
    assert grow.status_code == 400 and "over the network" in grow.json()["message"]
    squeeze = {"instances": 1, "port": f"{first + 1}-{first + 1}"}
    ok = httpx.post(w.url + "/api/processes/api/restart", headers=H, json=squeeze)
    assert ok.status_code == 200, ok.text
    assert len(pmd.list()) == 2  # the refused ones changed nothing


def test_rate_limit_headers_and_429(pmd: Pmd, web: Callable[..., Web]) -> None:
    """api/rest-api.md, Rate Limiting: X-RateLimit-Limit/Remaining/Reset; the burst limit
    (a fifth of the minute's) answers 429 with Retry-After."""
    w = web("--api-key", KEY, "--rate-limit", "20")
    with httpx.Client(base_url=w.url, headers=H) as client:
        first = client.get("/api/processes")
        assert first.headers["x-ratelimit-limit"] == "20"
        assert first.headers["x-ratelimit-remaining"] == "19"
        assert int(first.headers["x-ratelimit-reset"]) > time.time()
        answers = [client.get("/api/processes") for _ in range(5)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    refused = answers[-1]
    assert refused.json()["code"] == "TOO_MANY_REQUESTS"
    assert 1 <= int(refused.headers["retry-after"]) <= 10
    assert httpx.get(w.url + "/ui/app.js").status_code == 200  # the dashboard's files: not counted


def test_errors_keep_the_flat_shape_with_the_documented_codes(
    pmd: Pmd, web: Callable[..., Web]
) -> None:
    """api/rest-api.md, Common Error Codes: PROCESS_NOT_FOUND (the body stays SPEC's flat
    shape: docs/compat.md says why)."""
    w = web("--api-key", KEY)
    missing = httpx.get(w.url + "/api/processes/invalid-id", headers=H)
    assert missing.status_code == 404
    body = missing.json()
    assert body["success"] is False and body["code"] == "PROCESS_NOT_FOUND"
    assert isinstance(body["error"], str) and "invalid-id" in body["message"]
    ui_missing = httpx.get(w.url + "/ui/nope.js")
    assert ui_missing.status_code == 404 and ui_missing.json()["code"] == "NOT_FOUND"


def test_management_routes_answer_the_documented_messages(
    pmd: Pmd, web: Callable[..., Web]
) -> None:
    """api/rest-api.md: Stop, Restart (with a port), Reload, Delete Process."""
    first = free_range(2)
    pmd.start(child("http_app.py"), "--interpreter", PY, "-n", "web-app", "--port", str(first))
    w = web("--api-key", KEY)
    with httpx.Client(base_url=w.url, headers=H) as api:
        for path, body, message in (
            ("/api/processes/web-app/stop", None, "Process stopped successfully"),
            ("/api/processes/web-app/start", None, "Process started successfully"),
            (
                "/api/processes/web-app/restart",
                {"port": str(first + 1)},
                "Process restarted successfully",
            ),
            ("/api/processes/web-app/reload", {}, "Process reloaded successfully"),
        ):
            answer = api.post(path, json=body) if body is not None else api.post(path)
            assert answer.status_code == 200, answer.text
            assert answer.json()["success"] is True and answer.json()["message"] == message
        assert pmd.proc("web-app")["port"] == first  # reload without a port: the saved one
        gone = api.delete("/api/processes/web-app")
        assert gone.json()["message"] == "Process deleted successfully"
    assert pmd.list() == []


def test_bad_rate_limit_is_one_sentence(pmd: Pmd) -> None:
    """`web --rate-limit` takes requests a minute or off; anything else changes nothing."""
    result = pmd.run("web", "-p", "0", "--rate-limit", "lots", check=False)
    assert result.returncode == 2 and "invalid --rate-limit 'lots'" in result.stderr
    assert pmd.daemon_pid() is None
