"""supervisord adapter, for the `fleet` scenario only: supervisor from PyPI, installed into
its own virtualenv in bench/.cache/supervisor on first use, with a private configuration,
socket and logs in a temporary home.

What stands for the other managers' commands: the apps of an "ecosystem file" are
`[program:NAME]` sections in a file that the main configuration includes, started by
`supervisorctl update` on the running supervisord (each with `startsecs=0`, so that it is
RUNNING as soon as it is spawned, as the others call an app online; and its own log
files, as the others have); the listing is `supervisorctl status`; deleting everything is
`supervisorctl stop all`, then the file removed and `update` (`update` alone stops the
removed programs one at a time, about a second each); `kill` is `supervisorctl shutdown`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from common import CACHE_DIR, wait_until
from manager import CLI_TIMEOUT, App, CliError, Manager, ManagerMissing

SUPERVISOR_SPEC = "supervisor==4.3.*"
VENV = CACHE_DIR / "supervisor"
BIN = VENV / "bin"
INSTALL_TIMEOUT = 300.0
MIN_FDS = 16384  # supervisord raises its own limit to this (7 descriptors per program)

CONFIG = """\
[unix_http_server]
file={home}/supervisor.sock
chmod=0700

[supervisord]
logfile={home}/supervisord.log
pidfile={home}/supervisord.pid
childlogdir={home}/logs
minfds={minfds}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{home}/supervisor.sock

[include]
files = {home}/conf.d/*.conf
"""

PROGRAM = """\
[program:{name}]
command={command}
startsecs=0
autorestart=true
stdout_logfile={logs}/{name}-out.log
stderr_logfile={logs}/{name}-error.log
"""

STATUS_OK = (0, 3)  # `status` exits 3 when some program is not running


def ensure_installed() -> Path:
    """Path of the supervisord virtualenv's bin directory, made on first use."""
    if (BIN / "supervisord").exists() and (BIN / "supervisorctl").exists():
        return BIN
    print(f"installing {SUPERVISOR_SPEC} into {VENV} ...", flush=True)
    steps = [
        [sys.executable, "-m", "venv", str(VENV)],
        [str(BIN / "python"), "-m", "pip", "install", "-q", SUPERVISOR_SPEC],
    ]
    for argv in steps:
        try:
            proc = subprocess.run(argv, capture_output=True, timeout=INSTALL_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise ManagerMissing(f"{' '.join(argv)} took over {INSTALL_TIMEOUT:g} s") from None
        if proc.returncode != 0:
            tail = proc.stderr.decode(errors="replace")[-2000:]
            raise ManagerMissing(f"{' '.join(argv)} failed ({proc.returncode}): {tail}")
    return BIN


class Supd(Manager):
    key = "supd"
    label = "supervisord"
    home_env = "SUPERVISOR_BENCH_HOME"  # only to tell apart; supervisord reads its -c file
    pid_file_name = "supervisord.pid"

    def __init__(self) -> None:
        self.bin = ensure_installed()
        super().__init__()
        (self.home / "conf.d").mkdir()
        self.log_dir.mkdir()
        self.config = self.home / "supervisord.conf"
        self.config.write_text(CONFIG.format(home=self.home, minfds=MIN_FDS))
        self.programs = self.home / "conf.d" / "apps.conf"

    def command(self) -> list[str]:
        return [str(self.bin / "supervisorctl"), "-c", str(self.config)]

    def ensure_daemon(self, timeout: float = 20.0) -> int:
        if self._live_daemon() is None:
            argv = [str(self.bin / "supervisord"), "-c", str(self.config)]
            proc = subprocess.run(argv, env=self.env, capture_output=True, timeout=timeout)
            if proc.returncode != 0:
                raise CliError(f"supervisord exited {proc.returncode}: {proc.stderr.decode()}")
        pid = wait_until(self._live_daemon, timeout, "supervisord PID file")
        wait_until(lambda: (self.home / "supervisor.sock").exists(), timeout, "its socket")
        return pid

    def write_apps(self, directory: Path, names: Sequence[str], argv: Sequence[str]) -> Path:
        """The `[program:NAME]` sections of the apps, in a file that `start_file` takes."""
        command = " ".join(argv)
        text = "\n".join(PROGRAM.format(name=n, command=command, logs=self.log_dir) for n in names)
        path = directory / f"programs-{len(names)}.conf"
        path.write_text(text)
        return path

    def start_file(self, path: Path, timeout: float = CLI_TIMEOUT) -> None:
        """Include the programs of `path` and `update`: supervisord adds and starts them."""
        self.programs.write_text(path.read_text())
        self.run("update", timeout=timeout)

    def start(self, name: str, argv: Sequence[str]) -> None:
        self.start_file(self.write_apps(self.home, [name], argv))

    def list(self) -> float:
        start = time.perf_counter()
        self._status()
        return time.perf_counter() - start

    def _status(self) -> str:
        argv = [*self.command(), "status"]
        proc = subprocess.run(argv, env=self.env, capture_output=True, timeout=CLI_TIMEOUT)
        if proc.returncode not in STATUS_OK:
            raise CliError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.decode()}")
        return proc.stdout.decode()

    def jlist(self) -> list[App]:
        # NAME  RUNNING   pid 123, uptime 0:00:01
        apps = []
        for line in self._status().splitlines():
            words = line.replace(",", " ").split()
            if len(words) < 2:
                continue
            pid = int(words[3]) if len(words) > 3 and words[2] == "pid" else None
            status = "online" if words[1] == "RUNNING" else words[1].lower()
            apps.append(App(words[0], pid, status))
        return apps

    def restart_all(self, timeout: float = CLI_TIMEOUT) -> None:
        self.run("restart", "all", timeout=timeout)

    def delete(self, name: str) -> None:
        self.run("stop", name)
        self.programs.unlink(missing_ok=True)
        self.run("update")

    def delete_all(self, timeout: float = CLI_TIMEOUT) -> None:
        self.run("stop", "all", timeout=timeout)
        self.programs.unlink(missing_ok=True)
        self.run("update", timeout=timeout)

    def _kill_command(self) -> str:
        return "shutdown"

    def version(self) -> str:
        argv = [str(self.bin / "supervisord"), "--version"]
        proc = subprocess.run(argv, capture_output=True, timeout=20, check=False)
        return proc.stdout.decode().strip() or "unknown"
