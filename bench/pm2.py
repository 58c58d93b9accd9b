"""PM2 adapter: installs PM2 from npm into bench/.cache/pm2 and drives it with its CLI.

PM2 quirks handled here:
- The first command in a fresh PM2_HOME reports an "install" to PM2's version-check
  server and prints a banner unless $PM2_HOME/touch exists: we create it.
- The daemon checks for updates every 24 h unless PM2_DISABLE_VERSION_CHECK is set.
- `pm2 --version` spawns a daemon: the version is read from package.json instead.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import CACHE_DIR
from manager import CLI_TIMEOUT, App, Manager, ManagerMissing

PM2_SPEC = "pm2@7"
PREFIX = CACHE_DIR / "pm2"
PACKAGE_DIR = PREFIX / "node_modules" / "pm2"
BIN = PREFIX / "node_modules" / ".bin" / "pm2"
INSTALL_TIMEOUT = 600.0


def ensure_installed() -> Path:
    """Path of the pm2 command, running `npm install` into the cache on first use."""
    if BIN.exists():
        return BIN
    npm = shutil.which("npm")
    if npm is None:
        raise ManagerMissing(
            "npm not found on PATH: it is needed to install PM2 (apt-get install npm)"
        )
    PREFIX.mkdir(parents=True, exist_ok=True)
    print(f"installing {PM2_SPEC} into {PREFIX} ...", flush=True)
    proc = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--prefix", str(PREFIX), PM2_SPEC],
        capture_output=True,
        timeout=INSTALL_TIMEOUT,
        check=False,
    )
    if proc.returncode != 0 or not BIN.exists():
        tail = proc.stderr.decode(errors="replace")[-2000:]
        raise ManagerMissing(f"npm install {PM2_SPEC} failed ({proc.returncode}): {tail}")
    return BIN


def installed_version() -> str:
    data: dict[str, Any] = json.loads((PACKAGE_DIR / "package.json").read_text())
    return str(data["version"])


def node_version() -> str:
    node = shutil.which("node")
    if node is None:
        return "unknown"
    proc = subprocess.run([node, "--version"], capture_output=True, timeout=10, check=False)
    return proc.stdout.decode().strip() or "unknown"


class Pm2(Manager):
    key = "pm2"
    label = "PM2"
    home_env = "PM2_HOME"
    pid_file_name = "pm2.pid"

    def __init__(self) -> None:
        self.bin = ensure_installed()
        super().__init__()
        self.env["PM2_DISABLE_VERSION_CHECK"] = "true"
        (self.home / "touch").write_text("0")

    def command(self) -> list[str]:
        return [str(self.bin)]

    def start(self, name: str, argv: Sequence[str]) -> None:
        # An executable without a known extension runs directly (interpreter "none"),
        # as a direct child of the God daemon, in fork mode.
        extra = ["--", *argv[1:]] if len(argv) > 1 else []
        self.run("start", argv[0], "--name", name, *extra)

    def delete(self, name: str) -> None:
        self.run("delete", name)

    def delete_all(self, timeout: float = CLI_TIMEOUT) -> None:
        self.run("delete", "all", timeout=timeout)

    def jlist(self) -> list[App]:
        out = self.run("jlist").stdout.decode()
        procs: list[dict[str, Any]] = json.loads(out[out.index("[") :])
        apps = []
        for p in procs:
            env = p.get("pm2_env", {})
            apps.append(
                App(
                    p["name"], p.get("pid") or None, env.get("status", "?"), env.get("restart_time")
                )
            )
        return apps

    def version(self) -> str:
        return f"{installed_version()} (Node {node_version()})"
