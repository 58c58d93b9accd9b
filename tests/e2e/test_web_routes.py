"""Every route of SPEC §11.3 acting on the real daemon, and bad input over HTTP (issue 3,
items 4 and 7)."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from helpers import Pmd, Web, alive, child, wait_until

PY = sys.executable
KEY = "k-routes"


@pytest.fixture
def api(pmd: Pmd, web: Callable[..., Web]) -> Iterator[httpx.Client]:
    for name in ("a", "b"):
        pmd.start(
            child("env_dump.py"),
            "--interpreter",
            PY,
            "-n",
            name,
            "--",
            str(pmd.home.parent / f"{name}.json"),
        )
    w = web("--api-key", KEY)
    with httpx.Client(base_url=w.url, headers={"X-API-Key": KEY}, timeout=30) as client:
        yield client


def dump(pmd: Pmd, name: str) -> dict:
    path = pmd.home.parent / f"{name}.json"
    return wait_until(lambda: path.exists() and json.loads(path.read_text()), what="dump")


def test_root_status_and_system(api: httpx.Client) -> None:
    root = httpx.get(str(api.base_url) + "/").json()
    assert root == {
        "name": "PMDaemon",
        "version": root["version"],
        "description": root["description"],
        "status": "running",
        "endpoints": {
            "processes": "/api/processes",
            "system": "/api/system",
            "status": "/api/status",
            "websocket": "/ws",
        },
    }
    status = api.get("/api/status").json()
    assert status["status"] == "ok" and status["version"] == root["version"]
    assert status["timestamp"].endswith("Z")
    system = api.get("/api/system").json()
    for key in (
        "hostname",
        "platform",
        "arch",
        "cpu",
        "load",
        "memory",
        "disk",
        "uptime",
        "uptime_seconds",
        "processes",
    ):
        assert key in system
    assert system["processes"]["online"] == 2 and system["memory"]["total"] > 0


def test_list_filters_and_detail(api: httpx.Client, pmd: Pmd) -> None:
    pmd.run("stop", "b")
    assert [p["name"] for p in api.get("/api/processes").json()] == ["a", "b"]
    assert [p["name"] for p in api.get("/api/processes?status=stopped").json()] == ["b"]
    assert [p["name"] for p in api.get("/api/processes?name=a").json()] == ["a"]
    assert api.get("/api/processes?namespace=none").json() == []
    bad = api.get("/api/processes?status=sleepy")
    assert bad.status_code == 400 and bad.json()["code"] == "INVALID_CONFIGURATION"
    detail = api.get("/api/processes/0").json()
    assert detail["name"] == "a" and detail["config"]["script"].endswith("env_dump.py")
    assert (
        set(detail["logs"]) == {"out_file", "error_file", "log_file"}
        and detail["restart_history"] == []
    )


def test_actions_really_act(api: httpx.Client, pmd: Pmd) -> None:
    a = pmd.proc("a")
    stopped = api.post("/api/processes/a/stop")
    assert stopped.status_code == 200
    assert stopped.json() == {
        "success": True,
        "message": "Process stopped successfully",
        "processes": stopped.json()["processes"],
    }
    assert not alive(a["pid"]) and pmd.proc("a")["pid"] is None
    started = api.post("/api/processes/a/start").json()
    assert started["message"] == "Process started successfully"
    new_pid = started["processes"][0]["pid"]
    assert new_pid and alive(new_pid)
    restarted = api.post("/api/processes/a/restart").json()
    assert restarted["message"] == "Process restarted successfully"
    assert restarted["processes"][0]["pid"] != new_pid and not alive(new_pid)
    reloaded = api.post("/api/processes/a/reload").json()
    assert reloaded["message"] == "Process reloaded successfully"
    assert pmd.proc("a")["last_restart_reason"] == "reload"
    deleted = api.delete("/api/processes/a")
    assert deleted.json()["success"] is True
    assert deleted.json()["message"] == "Process deleted successfully"
    assert [p["name"] for p in pmd.list()] == ["b"]


def test_restart_with_a_port_is_for_that_run_only(api: httpx.Client, pmd: Pmd) -> None:
    (pmd.home.parent / "b.json").unlink()
    result = api.post("/api/processes/b/restart", json={"port": "3001"})
    assert result.status_code == 200 and result.json()["processes"][0]["port"] == 3001
    assert dump(pmd, "b")["env"]["PORT"] == "3001"
    info = api.get("/api/processes/b").json()
    assert info["port"] == 3001 and info["configured_port"] is None
    assert info["config"]["port"] is None  # the saved config keeps its own port
    (pmd.home.parent / "b.json").unlink()
    result = api.post("/api/processes/b/restart", json={"port": 3002})  # integers too
    assert result.json()["processes"][0]["port"] == 3002
    assert dump(pmd, "b")["env"]["PORT"] == "3002"
    (pmd.home.parent / "b.json").unlink()
    # An empty body needs no content type; without a port the configured one returns.
    result = api.post("/api/processes/b/restart", content=b"")
    assert result.status_code == 200 and result.json()["processes"][0]["port"] is None
    assert "PORT" not in dump(pmd, "b")["env"]


def test_unknown_ids_are_404_process_not_found(api: httpx.Client) -> None:
    for method, path in [
        ("GET", "/api/processes/nope"),
        ("POST", "/api/processes/9/stop"),
        ("POST", "/api/processes/nope/start"),
        ("DELETE", "/api/processes/x"),
        ("POST", "/api/processes/nope/restart"),
        ("GET", "/api/logs/nope"),
        ("POST", "/api/processes/nope/reload"),
    ]:
        response = api.request(method, path)
        assert response.status_code == 404, path
        body = response.json()
        assert body["success"] is False and body["code"] == "PROCESS_NOT_FOUND"
        assert body["error"] and body["message"]


def test_processes_cannot_be_created_or_signalled_over_tcp(api: httpx.Client, pmd: Pmd) -> None:
    response = api.post("/api/processes", json={"config": {"script": "sleep"}})
    assert response.status_code == 405
    assert api.post("/api/processes/a/signal", json={"signal": "SIGKILL"}).status_code == 404
    response = api.post("/api/processes/a/restart", json={"env": {"A": "1"}})
    assert response.status_code == 400 and "env" in response.json()["message"]
    assert [p["name"] for p in pmd.list()] == ["a", "b"]


def test_logs_route_shape(api: httpx.Client, pmd: Pmd) -> None:
    pmd.start(child("spew.py"), "--interpreter", PY, "-n", "spew", "--", "30")
    wait_until(lambda: api.get("/api/processes/spew/logs?type=error").json()["total_lines"])
    data = api.get("/api/processes/spew/logs?lines=5&type=out").json()
    assert data["total_lines"] == 5
    assert [e["message"] for e in data["logs"]] == [f"line {i}" for i in range(25, 30)]
    assert all(e["type"] == "out" and e["timestamp"] is None for e in data["logs"])
    errors = api.get("/api/logs/spew?type=error").json()["logs"]
    assert [e["message"] for e in errors] == ["an error line"]
    assert len(api.get("/api/logs/spew").json()["logs"]) == 21
    for query in ("lines=-1", "lines=abc", "lines=10001", "type=both", "lines=²"):
        response = api.get(f"/api/logs/spew?{query}")
        assert response.status_code == 400, query


def raw_request(url: str, data: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_bad_input_over_http(api: httpx.Client, pmd: Pmd, tmp_path: Path) -> None:
    before = pmd.list()
    response = api.post(
        "/api/processes/a/restart",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400 and response.json()["code"] == "INVALID_CONFIGURATION"
    for body in (
        {"port": "abc"},
        {"port": 0},
        {"port": 65536},
        {"port": "3005-3001"},
        {"port": True},
        {"port": [1]},
    ):
        response = api.post("/api/processes/a/restart", json=body)
        assert response.status_code == 400, body
        assert "port" in response.json()["message"], body
    response = api.post("/api/processes/a/restart", json=[1, 2])
    assert response.status_code == 400
    response = api.post("/api/processes/a/restart", json={"prot": 3000})
    assert response.status_code == 400 and "prot" in response.json()["message"]
    big = b'{"port": "' + b"1" * (2 * 1024 * 1024) + b'"}'
    response = api.post(
        "/api/processes/a/restart", content=big, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    # Encoded traversal in ids: 404, and no file is read.
    canary = tmp_path / "canary"
    canary.write_text("secret")
    for path in (
        "/api/processes/..%2F..%2Fetc%2Fpasswd",
        "/api/logs/..%2F..%2Fetc%2Fpasswd",
        "/api/processes/%2e%2e%2f%2e%2e/logs",
        f"/api/logs/{'%2F'.join(['..'] * 8)}{str(canary).replace('/', '%2F')}",
    ):
        response = api.get(path)
        assert response.status_code == 404, path
        assert "secret" not in response.text and "root:" not in response.text
    # 64 KiB of headers: a clean 4xx, not a crash or a hang.
    url = str(api.base_url)
    answer = raw_request(
        url,
        b"GET /api/processes HTTP/1.1\r\nHost: x\r\nX-API-Key: "
        + KEY.encode()
        + b"\r\nX-Pad: "
        + b"a" * 65536
        + b"\r\nConnection: close\r\n\r\n",
    )
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500, answer[:200]
    # Garbage on the wire.
    answer = raw_request(url, b"\x00\x01\x02 NOT HTTP\r\n\r\n")
    assert answer == b"" or answer.startswith(b"HTTP/1.1 4")
    assert [(p["name"], p["pid"]) for p in pmd.list()] == [(p["name"], p["pid"]) for p in before]


def test_openapi_is_served_behind_the_key_and_committed(api: httpx.Client) -> None:
    served = api.get("/api/openapi.json").json()
    assert served["openapi"].startswith("3.")
    assert httpx.get(str(api.base_url) + "/api/openapi.json").status_code == 401
    committed = json.loads((Path(__file__).parents[2] / "docs" / "openapi.json").read_text())
    assert served == committed, "docs/openapi.json is stale: python -m pmdaemon.api.openapi"
    for path in (
        "/api/processes",
        "/api/processes/{id}",
        "/api/processes/{id}/restart",
        "/api/system",
        "/api/status",
        "/api/logs/{id}",
    ):
        assert path in served["paths"]
