"""`pmdaemon web`, `show-api-key` and `regenerate-api-key`. Keys are resolved here (first
found wins: --api-key, --api-key-file, PMDAEMON_API_KEY, <home>/api-key) and handed to the
daemon over the owner-only socket or a pipe, never on a command line."""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import Any

from pmdaemon.cli import UsageError, render
from pmdaemon.client import Client, error_from
from pmdaemon.errors import DaemonNotRunning, PmdError
from pmdaemon.netaddr import is_loopback


def _check_key(key: str, source: str) -> str:
    if not key or any(c.isspace() for c in key):
        raise UsageError(
            f"the API key from {source} is empty or contains whitespace: use a single word "
            "such as the output of `openssl rand -hex 32`"
        )
    return key


def read_key_file(path: Path, source: str) -> str:
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read the API key file {path}: {exc.strerror}") from None
    return _check_key(text.strip("\n"), source)


def resolve_key(args: Any, home: Path) -> tuple[str | None, str]:
    """The API key and where it came from, by SPEC §11.1's precedence."""
    if args.api_key is not None:
        return _check_key(args.api_key, "--api-key"), "--api-key"
    if args.api_key_file is not None:
        return read_key_file(Path(args.api_key_file), "--api-key-file"), "--api-key-file"
    env = os.environ.get("PMDAEMON_API_KEY")
    if env is not None:
        return _check_key(env, "PMDAEMON_API_KEY"), "PMDAEMON_API_KEY"
    stored = home / "api-key"
    if stored.exists():
        return read_key_file(stored, str(stored)), str(stored)
    return None, ""


def web_config(args: Any, home: Path) -> dict[str, Any]:
    key, _ = resolve_key(args, home)
    read_only = [_check_key(k, "--read-only-api-key") for k in args.read_only_api_key or []]
    if read_only and key is None:
        raise UsageError("--read-only-api-key needs a full API key too (--api-key)")
    if key is None and not is_loopback(args.host) and not args.insecure_no_auth:
        raise UsageError(
            f"refusing to serve the API without an API key on {args.host}, which is not "
            "loopback: set --api-key (or PMDAEMON_API_KEY), or pass --insecure-no-auth"
        )
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("--tls-cert and --tls-key go together")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"invalid port {args.port}: expected 0 to 65535")
    return {
        "host": args.host,
        "port": args.port,
        "api_keys": [key] if key else [],
        "read_only_api_keys": read_only,
        "tls_cert": os.path.abspath(args.tls_cert) if args.tls_cert else None,
        "tls_key": os.path.abspath(args.tls_key) if args.tls_key else None,
        "cors_origins": args.cors_origin or [],
        "ws_auth": args.ws_auth,
        "insecure_no_auth": args.insecure_no_auth,
        "verbose": args.verbose_web,
        "rate_limit": rate_limit(args.rate_limit),
    }


def rate_limit(text: str) -> int:
    """``--rate-limit``: requests a minute per client, or off."""
    if text.strip().lower() in ("off", "none", "0"):
        return 0
    if text.strip().isascii() and text.strip().isdigit() and 1 <= int(text) <= 1_000_000:
        return int(text)
    raise UsageError(
        f"invalid --rate-limit {text[:32]!r}: expected requests a minute per client "
        "(1 to 1000000), or off"
    )


def cmd_web(home: Path, args: Any) -> int:
    config = web_config(args, home)
    if not config["api_keys"]:
        render.warn("no API key is set: the API runs without authentication")
    client = Client(home, autostart=False)
    try:
        # No timeout: the answer is a stream that lasts as long as this API is served.
        response = client.open("POST", "/daemon/web", config, timeout=None)
    except DaemonNotRunning:
        become_daemon(home, config)  # does not return
    if response.status >= 400:
        raise error_from(response.status, json.loads(response.body() or b"null"))
    # Turn SIGTERM into a clean exit: closing the connection stops this API listener.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        for raw in response.lines():
            item = json.loads(raw)
            if "url" in item:
                print(
                    f"pmdaemon web API on {item['url']} ({item['auth']}), serving the "
                    "running daemon's processes; Ctrl-C stops the API, not the daemon",
                    flush=True,
                )
            else:
                print(item["access"], flush=True)
    except KeyboardInterrupt:
        pass
    except (EOFError, OSError):
        print("web API ended: the daemon stopped", file=sys.stderr)
    finally:
        response.close()
    return 0


def become_daemon(home: Path, config: dict[str, Any]) -> None:
    """No daemon runs for this home: this process becomes it, in the foreground."""
    read_fd, write_fd = os.pipe()
    os.write(write_fd, json.dumps(config).encode())
    os.close(write_fd)
    os.set_inheritable(read_fd, True)
    argv = [
        sys.executable,
        "-m",
        "pmdaemon.daemon",
        "--home",
        str(home),
        "--foreground",
        "--web-config-fd",
        str(read_fd),
    ]
    sys.stdout.flush()
    os.execv(sys.executable, argv)


def cmd_show_api_key(home: Path, *, json_out: bool = False) -> int:
    path = home / "api-key"
    if not path.exists():
        raise PmdError(
            f"no stored API key in {path}: create one with `pmdaemon regenerate-api-key`"
        )
    try:
        key = read_key_file(path, str(path))
    except UsageError as exc:
        raise PmdError(str(exc)) from None
    print(json.dumps({"api_key": key, "path": str(path)}, indent=2) if json_out else key)
    return 0


def cmd_regenerate_api_key(home: Path, *, json_out: bool = False) -> int:
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = secrets.token_hex(32)
        tmp = home / "api-key.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, home / "api-key")
    except OSError as exc:
        raise PmdError(f"cannot write {home / 'api-key'}: {exc.strerror}") from None
    note = (
        f"stored in {home / 'api-key'} (mode 0600); a running `pmdaemon web` keeps its old "
        "key until it is restarted"
    )
    if json_out:
        print(json.dumps({"api_key": key, "path": str(home / "api-key"), "note": note}, indent=2))
        return 0
    print(key)
    print(note, file=sys.stderr)
    return 0
