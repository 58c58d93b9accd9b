"""pmdaemon adapter: drives the `pmdaemon` command with its own temporary PMDAEMON_HOME.

The command is taken from $PMDAEMON_BIN, else `pmdaemon` on PATH, else the repository's
.venv/bin/pmdaemon.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import REPO_DIR, is_alive
from manager import CLI_TIMEOUT, App, Manager, ManagerMissing

VENV_BIN = REPO_DIR / ".venv" / "bin" / "pmdaemon"


def find_bin() -> Path:
    env = os.environ.get("PMDAEMON_BIN")
    if env:
        path = Path(env)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ManagerMissing(f"PMDAEMON_BIN={env} is not an executable file")
        return path
    found = shutil.which("pmdaemon")
    if found:
        return Path(found)
    if VENV_BIN.exists():
        return VENV_BIN
    raise ManagerMissing(
        "pmdaemon not found: set PMDAEMON_BIN=/path/to/pmdaemon, put pmdaemon on PATH, "
        f"or install it into {VENV_BIN.parent.parent} (python3 -m venv .venv && "
        ".venv/bin/pip install .), or run with --managers pm2"
    )


def interpreter_version(script: Path) -> str:
    """Python version of the interpreter on the script's #! line ("unknown" if none)."""
    try:
        with script.open("rb") as f:
            first = f.readline(4096)
    except OSError:
        return "unknown"
    parts = first[2:].decode(errors="replace").split() if first.startswith(b"#!") else []
    if not parts:
        return "unknown"
    code = "import platform; print(platform.python_version())"
    proc = subprocess.run([*parts, "-c", code], capture_output=True, timeout=10, check=False)
    return proc.stdout.decode().strip() or "unknown"


class Pmd(Manager):
    key = "pmd"
    label = "pmdaemon"
    home_env = "PMDAEMON_HOME"
    pid_file_name = "daemon.pid"

    def __init__(self) -> None:
        self.bin = find_bin()
        super().__init__()

    def command(self) -> list[str]:
        return [str(self.bin)]

    # --no-wait: return once spawned, as PM2's start does (without it, start watches the
    # new processes for min_uptime to report one that dies at once).
    def start(self, name: str, argv: Sequence[str]) -> None:
        extra = ["--", *argv[1:]] if len(argv) > 1 else []
        self.run("start", argv[0], "-n", name, "--no-wait", *extra)

    def start_file(self, path: Path, timeout: float = CLI_TIMEOUT) -> None:
        self.run("start", str(path), "--no-wait", timeout=timeout)

    def delete(self, name: str) -> None:
        self.run("delete", name, "-f")

    def delete_all(self, timeout: float = CLI_TIMEOUT) -> None:
        self.run("delete", "all", "-f", timeout=timeout)

    def companion_pids(self) -> dict[str, int]:
        # The log keeper: a child of the daemon in a session of its own, which reads the
        # apps' output pipes and writes their log files.
        # Its memory and CPU are the daemon's: without it the figures would be too low,
        # so a missing keeper is an error, not a smaller sum.
        pid = self._read_pid("logkeeper.pid")
        if pid is None or not is_alive(pid):
            raise RuntimeError(f"pmdaemon's log keeper is not running ({self.home}/logkeeper.pid)")
        return {"log keeper": pid}

    def jlist(self) -> list[App]:
        procs: list[dict[str, Any]] = json.loads(self.run("list", "--json").stdout)
        return [App(p["name"], p.get("pid") or None, p["status"], p.get("restarts")) for p in procs]

    def version(self) -> str:
        proc = subprocess.run(
            [str(self.bin), "--version"], capture_output=True, env=self.env, timeout=20, check=False
        )
        words = proc.stdout.decode().split()
        version = words[-1] if proc.returncode == 0 and words else "unknown"
        return f"{version} (Python {interpreter_version(self.bin)})"
