"""What the scenarios need from a process manager; pm2.py and pmd.py fill it in."""

from __future__ import annotations

import json
import os
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import psutil
from common import is_alive, kill_leftovers, temp_dir, wait_until

CLI_TIMEOUT = 60.0
KILL_TIMEOUT = 20.0


class ManagerMissing(RuntimeError):
    """The manager's command cannot be found or installed."""


class CliError(RuntimeError):
    """A manager command exited non-zero."""


@dataclass(frozen=True)
class App:
    name: str
    pid: int | None
    status: str
    restarts: int | None = None

    @property
    def online(self) -> bool:
        return self.status == "online" and self.pid is not None and is_alive(self.pid)


Apps = list[App]  # an alias: inside Manager, `list` names the method
Paths = list[Path]  # likewise


class Manager(ABC):
    """One manager with its own temporary home; a context manager that kills it on exit."""

    key: str  # short id used on command lines and in JSON: "pmd" or "pm2"
    label: str  # display name
    home_env: str  # environment variable naming the home directory
    pid_file_name: str  # daemon PID file, relative to the home

    def __init__(self) -> None:
        self.home = temp_dir(f"bench-{self.key}-")
        self.env = {**os.environ, self.home_env: str(self.home)}

    # -- to fill in ----------------------------------------------------------------------

    @abstractmethod
    def command(self) -> list[str]:
        """argv prefix running the CLI."""

    @abstractmethod
    def start(self, name: str, argv: Sequence[str]) -> None:
        """Start `argv` (executable then arguments, no shell) as app `name`."""

    @abstractmethod
    def jlist(self) -> Apps:
        """The apps as the daemon reports them, through the CLI's JSON listing."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Stop app `name` and forget it (its log files stay)."""

    @abstractmethod
    def delete_all(self, timeout: float = CLI_TIMEOUT) -> None:
        """Stop every app and forget it."""

    @abstractmethod
    def version(self) -> str: ...

    # -- shared --------------------------------------------------------------------------

    def run(self, *args: str, timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess[bytes]:
        """Run one CLI command, output to pipes; CliError if it fails."""
        argv = [*self.command(), *args]
        proc = subprocess.run(argv, env=self.env, capture_output=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).decode(errors="replace").strip()[-2000:]
            raise CliError(f"{' '.join(argv)} exited {proc.returncode}: {tail}")
        return proc

    def list(self) -> float:
        """Run the human `list` command once; returns its wall time in seconds."""
        start = time.perf_counter()
        self.run("list")
        return time.perf_counter() - start

    def write_apps(self, directory: Path, names: Sequence[str], argv: Sequence[str]) -> Path:
        """An ecosystem JSON file that pmdaemon and PM2 read alike (`start FILE`): one app
        per name, each running `argv` directly (`interpreter: none`)."""
        apps = [
            {"name": name, "script": argv[0], "args": list(argv[1:]), "interpreter": "none"}
            for name in names
        ]
        path = directory / f"ecosystem-{len(names)}.json"
        path.write_text(json.dumps({"apps": apps}, indent=1))
        return path

    def start_file(self, path: Path, timeout: float = CLI_TIMEOUT) -> None:
        """Start every app of the file `path` (`start FILE`, the same for both)."""
        self.run("start", str(path), timeout=timeout)

    def restart_all(self, timeout: float = CLI_TIMEOUT) -> None:
        self.run("restart", "all", timeout=timeout)

    def god_pid(self) -> int | None:
        """The daemon's PID from its PID file, if there is one."""
        return self._read_pid(self.pid_file_name)

    def companion_pids(self) -> dict[str, int]:
        """Long-lived processes the daemon runs besides the apps, whose cost is the
        daemon's (pmdaemon's log keeper), by role; PM2's God daemon has none."""
        return {}

    def daemon_pids(self) -> dict[str, int]:
        """The daemon and its companions, by role ("daemon" first); RuntimeError if the
        daemon is not running."""
        pid = self._live_daemon()
        if pid is None:
            raise RuntimeError(f"{self.label} daemon is not running")
        return {"daemon": pid, **self.companion_pids()}

    @property
    def log_dir(self) -> Path:
        """Where the apps' log files are written by default."""
        return self.home / "logs"

    def log_files(self, name: str, stream: str = "out") -> Paths:
        """App `name`'s log files of `stream` ("out" or "error"), rotated generations
        included, oldest first (NAME-out.log.N ... NAME-out.log.1, NAME-out.log)."""
        prefix = f"{name}-{stream}"
        found = [p for p in self.log_dir.glob(f"{prefix}*") if p.is_file()]

        def age(p: Path) -> int:
            suffix = p.name.rpartition(".")[2]
            return int(suffix) if suffix.isdigit() else 0

        return sorted(found, key=age, reverse=True)

    def _read_pid(self, file_name: str) -> int | None:
        try:
            return int((self.home / file_name).read_text().strip())
        except (OSError, ValueError):
            return None

    def ensure_daemon(self, timeout: float = 20.0) -> int:
        """Start the daemon if needed (any command auto-starts it); returns its PID."""
        self.run("list")
        return wait_until(self._live_daemon, timeout, f"{self.label} daemon PID file")

    def wait_online(self, names: Sequence[str], timeout: float) -> Apps:
        """Wait until every app in `names` is online with a live PID."""
        wanted = set(names)

        def ready() -> Apps | None:
            apps = [a for a in self.jlist() if a.name in wanted]
            return apps if len(apps) == len(wanted) and all(a.online for a in apps) else None

        return wait_until(ready, timeout, f"{len(wanted)} {self.label} apps online", 0.25)

    def kill(self) -> None:
        """Stop the daemon and its apps with the CLI, then make sure none of them survive."""
        pid = self._live_daemon()
        if pid is None:
            return
        try:
            daemon = psutil.Process(pid)
            tree = [daemon, *daemon.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        try:
            self.run(self._kill_command(), timeout=KILL_TIMEOUT)
        except (CliError, subprocess.TimeoutExpired) as exc:
            print(f"warning: {self.label} kill failed: {exc}")
        try:
            wait_until(lambda: not is_alive(pid), KILL_TIMEOUT, f"{self.label} daemon to exit")
        except TimeoutError as exc:
            print(f"warning: {exc}; killing it")
        killed = kill_leftovers(tree)
        if killed:
            print(f"warning: {self.label} left processes behind, killed: {killed}")

    def _kill_command(self) -> str:
        """The CLI command that stops the daemon and its apps."""
        return "kill"

    def _live_daemon(self) -> int | None:
        pid = self.god_pid()
        return pid if pid is not None and is_alive(pid) else None

    def __enter__(self) -> Manager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()
