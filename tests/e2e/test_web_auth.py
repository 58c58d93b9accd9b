"""API-key authentication of `pmdaemon web`, exactly as the seed document says (issue 3,
items 1-3), driven with the seed's own clients: curl, node's fetch and Python requests."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from helpers import PMDAEMON, Pmd, Web, alive, child, wait_until

PY = sys.executable
KEY = "your-secret-api-key"
UNAUTHORIZED = '{"error": "Unauthorized", "message": "Invalid or missing API key"}'
FORBIDDEN = '{"error": "Forbidden", "message": "Access denied"}'
GET_ROUTES = [
    "/api/processes",
    "/api/processes/my-app",
    "/api/system",
    "/api/status",
    "/api/processes/my-app/logs",
    "/api/logs/my-app",
    "/api/openapi.json",
]
MUTATING = [
    ("POST", "/api/processes/my-app/stop"),
    ("POST", "/api/processes/my-app/start"),
    ("POST", "/api/processes/my-app/restart"),
    ("POST", "/api/processes/my-app/reload"),
    ("DELETE", "/api/processes/my-app"),
    ("POST", "/api/processes"),
]


def curl(*args: str) -> tuple[int, str]:
    result = subprocess.run(
        ["curl", "-s", "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    body, _, code = result.stdout.rpartition("\n")
    return int(code), body


def my_app(pmd: Pmd) -> int:
    info = pmd.start(child("park.py"), "--interpreter", PY, "-n", "my-app")["processes"][0]
    return int(info["pid"])


def test_seed_curl_examples_with_each_header_form(pmd: Pmd, web: Callable[..., Web]) -> None:
    pid = my_app(pmd)  # started by the CLI before the web API runs
    w = web("--api-key", KEY)
    for header in (
        f"Authorization: Bearer {KEY}",
        f"X-API-Key: {KEY}",
        f"Authorization: ApiKey {KEY}",
        f"authorization: bearer {KEY}",
        f"Authorization: APIKEY {KEY}",
    ):
        code, body = curl("-H", header, f"{w.url}/api/processes")
        assert code == 200, (header, body)
        assert json.loads(body)[0]["pid"] == pid
    code, body = curl("-H", f"X-API-Key: {KEY}", f"{w.url}/api/processes/my-app")
    assert code == 200 and json.loads(body)["name"] == "my-app"
    code, body = curl("-H", f"X-API-Key: {KEY}", f"{w.url}/api/system")
    assert code == 200 and json.loads(body)["cpu"]["cores"] >= 1
    code, body = curl(
        "-X", "POST", "-H", f"Authorization: Bearer {KEY}", f"{w.url}/api/processes/my-app/stop"
    )
    assert code == 200 and json.loads(body)["success"] is True
    assert pmd.proc("my-app")["status"] == "stopped"
    # Troubleshooting section: the root answers without a key.
    code, body = curl(f"{w.url}/")
    assert code == 200 and json.loads(body)["name"] == "PMDaemon"


def test_missing_wrong_and_malformed_keys_get_the_exact_401(
    pmd: Pmd, web: Callable[..., Web]
) -> None:
    w = web("--api-key", KEY)
    cases = [
        [],
        ["-H", "Authorization: Bearer wrong"],
        ["-H", "X-API-Key: wrong"],
        ["-H", f"Authorization: Basic {KEY}"],
        ["-H", "Authorization: Bearer"],
        ["-H", "Authorization: Bearer "],
        ["-H", f"Authorization: {KEY}"],
        ["-H", f"X-Api-Key: {KEY}x"],
        ["-H", f"Authorization: Token {KEY}"],
    ]
    for extra in cases:
        code, body = curl(*extra, f"{w.url}/api/processes")
        assert (code, body) == (401, UNAUTHORIZED), extra
    for path in [*GET_ROUTES, "/api/nothing-here", "/metrics", "/api", "/api/"]:
        code, body = curl(f"{w.url}{path}")
        assert (code, body) == (401, UNAUTHORIZED), path
    for method, path in MUTATING:
        code, body = curl("-X", method, f"{w.url}{path}")
        assert (code, body) == (401, UNAUTHORIZED), path
    # Only the exact public paths are public.
    for path in ("/ws/", "/index.html", "//"):
        code, _ = curl(f"{w.url}{path}")
        assert code == 401, path


def test_node_fetch_example_runs_as_written(
    pmd: Pmd, web: Callable[..., Web], tmp_path: Path
) -> None:
    my_app(pmd)
    w = web("--api-key", KEY)
    script = tmp_path / "example.mjs"
    script.write_text(
        textwrap.dedent(f"""\
        const API_KEY = '{KEY}';
        const BASE_URL = '{w.url}';

        // Using fetch with Bearer token
        const response = await fetch(`${{BASE_URL}}/api/processes`, {{
        headers: {{
        'Authorization': `Bearer ${{API_KEY}}`
        }}
        }});

        // Using fetch with X-API-Key header
        const response2 = await fetch(`${{BASE_URL}}/api/processes`, {{
        headers: {{
        'X-API-Key': API_KEY
        }}
        }});

        const processes = await response.json();
        const processes2 = await response2.json();
        const anonymous = await fetch(`${{BASE_URL}}/api/processes`);
        console.log(JSON.stringify({{processes, processes2, status: anonymous.status,
                                     body: await anonymous.text()}}));
        """)
    )
    out = subprocess.run(
        ["node", str(script)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    data = json.loads(out)
    assert data["processes"][0]["name"] == "my-app" == data["processes2"][0]["name"]
    assert data["status"] == 401 and data["body"] == UNAUTHORIZED


def test_python_requests_example_runs_as_written(
    pmd: Pmd, web: Callable[..., Web], tmp_path: Path
) -> None:
    my_app(pmd)
    w = web("--api-key", KEY)
    script = tmp_path / "example.py"
    script.write_text(
        textwrap.dedent(f"""\
        import requests

        API_KEY = '{KEY}'
        BASE_URL = '{w.url}'

        # Using Authorization header
        headers = {{'Authorization': f'Bearer {{API_KEY}}'}}
        response = requests.get(f'{{BASE_URL}}/api/processes', headers=headers)

        # Using X-API-Key header
        headers = {{'X-API-Key': API_KEY}}
        response = requests.get(f'{{BASE_URL}}/api/processes', headers=headers)

        processes = response.json()
        print(processes[0]["name"])
        """)
    )
    out = subprocess.run(
        [PY, str(script)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "my-app"


def test_key_precedence_and_open_loopback(pmd: Pmd, web: Callable[..., Web]) -> None:
    env = {**pmd.env, "PMDAEMON_API_KEY": "from-env"}
    w = web("--api-key", "from-flag", env=env)
    assert httpx.get(f"{w.url}/api/status", headers={"X-API-Key": "from-flag"}).status_code == 200
    assert httpx.get(f"{w.url}/api/status", headers={"X-API-Key": "from-env"}).status_code == 401
    w.stop()
    w = web(env=env)
    assert httpx.get(f"{w.url}/api/status", headers={"X-API-Key": "from-env"}).status_code == 200
    w.stop()
    # Neither, and no stored key: open on loopback, and it says so.
    w = web()
    assert httpx.get(f"{w.url}/api/processes").status_code == 200
    assert "without authentication" in w.output() or "no API key" in w.output()


def test_stored_key_file_commands(pmd: Pmd, web: Callable[..., Web], home: Path) -> None:
    result = pmd.run("show-api-key", check=False)
    assert result.returncode == 1 and "regenerate-api-key" in result.stderr
    key = pmd.run("regenerate-api-key").stdout.strip()
    assert len(key) == 64
    assert stat.S_IMODE((home / "api-key").stat().st_mode) == 0o600
    assert pmd.run("show-api-key").stdout.strip() == key
    w = web()
    assert httpx.get(f"{w.url}/api/status").status_code == 401
    assert httpx.get(f"{w.url}/api/status", headers={"X-API-Key": key}).status_code == 200
    key_file = home.parent / "k"
    key_file.write_text("file-key\n")
    w.stop()
    w = web("--api-key-file", str(key_file))
    assert httpx.get(f"{w.url}/api/status", headers={"X-API-Key": "file-key"}).status_code == 200


@pytest.mark.parametrize(
    "args",
    [
        ["--host", "0.0.0.0"],
        ["--host", "::"],
        ["--api-key", ""],
        ["--api-key", "two words"],
        ["--api-key", " "],
        ["--api-key-file", "/nonexistent/key"],
        ["--tls-cert", "x.pem"],
        ["--read-only-api-key", "ro"],
        ["-p", "70000"],
        ["--api-key", "a\tb"],
    ],
)
def test_refused_start_up_configurations(pmd: Pmd, args: list[str]) -> None:
    env = {k: v for k, v in pmd.env.items() if k != "PMDAEMON_API_KEY"}
    result = subprocess.run(
        [PMDAEMON, "web", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2, result
    assert result.stderr.startswith("error:") and "Traceback" not in result.stderr
    assert pmd.daemon_pid() is None  # nothing was started
    if args[0] == "--host":
        assert "--insecure-no-auth" in result.stderr and "loopback" in result.stderr


def test_empty_key_from_the_environment_is_refused(pmd: Pmd) -> None:
    env = {**pmd.env, "PMDAEMON_API_KEY": ""}
    result = subprocess.run(
        [PMDAEMON, "web"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2 and "PMDAEMON_API_KEY" in result.stderr


def test_non_loopback_with_insecure_no_auth_is_allowed(pmd: Pmd, web: Callable[..., Web]) -> None:
    w = web("--host", "0.0.0.0", "--insecure-no-auth")
    port = w.url.rsplit(":", 1)[1]
    assert httpx.get(f"http://127.0.0.1:{port}/api/status").status_code == 200


def test_the_key_never_leaks(pmd: Pmd, web: Callable[..., Web]) -> None:
    secret = "s3cr3t-key-value-0123456789"
    my_app(pmd)
    w = web("--api-key", secret, "--verbose")
    seen = []
    with httpx.Client(base_url=w.url) as client:
        for headers in (
            {"X-API-Key": secret},
            {"Authorization": f"Bearer {secret}"},
            {"X-API-Key": secret + "x"},
            {},
        ):
            for path in [*GET_ROUTES, "/", "/nope"]:
                response = client.get(path, headers=headers)
                seen.append(response.text + str(response.headers))
        response = client.post("/api/processes/my-app/restart", headers={"X-API-Key": secret})
        seen.append(response.text)
    wait_until(
        lambda: any("/api/processes/my-app/restart" in line for line in w.lines),
        what="access log line",
    )
    assert all(secret not in text for text in seen)
    assert secret not in w.output()
    assert (
        secret not in (pmd.home / "daemon.log").read_text()
        if (pmd.home / "daemon.log").exists()
        else True
    )
    access = [line for line in w.lines if " /api/" in line]
    assert any(" 200 " in line and "auth=ok" in line for line in access)
    assert any(" 401 " in line and "auth=invalid" in line for line in access)
    assert any(" 401 " in line and "auth=missing" in line for line in access)
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert secret not in ps.replace(f"--api-key {secret}", "")  # only the CLI's own argv


def test_read_only_keys_read_and_get_the_exact_403(pmd: Pmd, web: Callable[..., Web]) -> None:
    pid = my_app(pmd)
    w = web("--api-key", KEY, "--read-only-api-key", "ro-1", "--read-only-api-key", "ro-2")
    with httpx.Client(base_url=w.url) as client:
        for key in ("ro-1", "ro-2"):
            for path in GET_ROUTES:
                assert client.get(path, headers={"X-API-Key": key}).status_code == 200, path
            for method, path in MUTATING:
                response = client.request(method, path, headers={"X-API-Key": key})
                assert (response.status_code, response.text) == (403, FORBIDDEN), path
        assert pmd.proc("my-app")["pid"] == pid  # nothing changed
        response = client.post("/api/processes/my-app/restart", headers={"X-API-Key": KEY})
        assert response.status_code == 200
        assert response.json()["processes"][0]["pid"] != pid
        # A request carrying a read-only and a full key is authenticated as full.
        response = client.post(
            "/api/processes/my-app/stop",
            headers={"X-API-Key": "ro-1", "Authorization": f"Bearer {KEY}"},
        )
        assert response.status_code == 200


def test_repeated_failures_are_slowed_down(pmd: Pmd, web: Callable[..., Web]) -> None:
    w = web("--api-key", KEY)
    with httpx.Client(base_url=w.url) as client:
        codes = [
            client.get("/api/status", headers={"X-API-Key": f"guess-{i}"}).status_code
            for i in range(30)
        ]
        assert codes[:10] == [401] * 10 and set(codes[10:]) == {429}
        response = client.get("/api/status", headers={"X-API-Key": KEY})
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) >= 1
        assert response.json()["code"] == "TOO_MANY_REQUESTS"
        assert client.get("/").status_code == 200  # public paths stay public


def test_cors_is_closed_unless_configured(pmd: Pmd, web: Callable[..., Web]) -> None:
    w = web("--api-key", KEY)
    preflight = {
        "Origin": "https://dash.example",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "x-api-key",
    }
    response = httpx.options(f"{w.url}/api/processes", headers=preflight)
    assert "access-control-allow-origin" not in response.headers
    w.stop()
    w = web("--api-key", KEY, "--cors-origin", "https://dash.example")
    response = httpx.options(f"{w.url}/api/processes", headers=preflight)
    assert response.status_code == 200  # preflights need no key
    assert response.headers["access-control-allow-origin"] == "https://dash.example"
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "x-api-key" in allowed
    other = httpx.options(
        f"{w.url}/api/processes", headers={**preflight, "Origin": "https://evil.example"}
    )
    assert other.headers.get("access-control-allow-origin") != "https://evil.example"
    response = httpx.get(
        f"{w.url}/api/status", headers={"Origin": "https://dash.example", "X-API-Key": KEY}
    )
    assert response.headers["access-control-allow-origin"] == "https://dash.example"


def test_security_headers_on_every_response(pmd: Pmd, web: Callable[..., Web]) -> None:
    w = web("--api-key", KEY)
    for path, headers in (
        ("/", {}),
        ("/api/processes", {}),
        ("/api/processes", {"X-API-Key": KEY}),
        ("/nope", {"X-API-Key": KEY}),
    ):
        response = httpx.get(f"{w.url}{path}", headers=headers)
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "strict-transport-security" not in response.headers


def test_environment_values_never_cross_tcp(pmd: Pmd, web: Callable[..., Web]) -> None:
    secret = "db-password-77"
    pmd.env["SHELL_SECRET"] = "shell-secret-88"
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "envy", "-e", f"DB_PASS={secret}")
    w = web("--api-key", KEY)
    texts = [
        httpx.get(f"{w.url}{path}", headers={"X-API-Key": KEY}).text
        for path in ("/api/processes", "/api/processes/envy", "/api/processes/all")
    ]
    assert all(secret not in t and "shell-secret-88" not in t for t in texts)
    assert json.loads(texts[1])["config"]["env"] == {"DB_PASS": "<hidden>"}


def test_web_attaches_to_a_running_daemon_without_restarting(
    pmd: Pmd, web: Callable[..., Web]
) -> None:
    pid = my_app(pmd)
    daemon = pmd.daemon_pid()
    w = web("--api-key", KEY)
    assert "serving the running daemon" in w.output()
    response = httpx.get(f"{w.url}/api/processes", headers={"X-API-Key": KEY})
    assert response.json()[0]["pid"] == pid
    assert w.stop() == 0
    # Stopping the attached API leaves the daemon and its apps alone, and closes the port.
    assert pmd.daemon_pid() == daemon and pmd.proc("my-app")["pid"] == pid
    wait_until(lambda: _refused(w.url), what="listener closed")


def _refused(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.ConnectError:
        return True
    return False


def test_foreground_web_daemon_stops_gracefully_on_sigterm(
    pmd: Pmd, web: Callable[..., Web]
) -> None:
    w = web("--api-key", KEY)  # a fresh home: this process becomes the daemon
    pid = my_app(pmd)
    assert pmd.daemon_pid() == w.proc.pid
    assert w.stop() == 0
    assert not alive(pid)
    state = json.loads((pmd.home / "state.json").read_text())
    assert state["processes"][0]["desired"] == "running"


def test_attached_web_ends_cleanly_when_the_daemon_stops(pmd: Pmd, web: Callable[..., Web]) -> None:
    my_app(pmd)
    w = web("--api-key", KEY)
    assert "serving the running daemon" in w.output()
    pmd.run("kill")
    assert w.proc.wait(timeout=30) == 0
    w.join()
    assert "the daemon stopped" in w.output() and "Traceback" not in w.output()
    assert "internal error" not in w.output()
