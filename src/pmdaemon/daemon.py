"""The daemon: the composition root. It claims the home (lock, pid file, owner-only socket),
loads the state, brings every process to its desired state, serves the control API, and on
SIGTERM/SIGINT stops every child in parallel, saves and exits 0.

Run as ``python -m pmdaemon.daemon``; the CLI starts it in the background."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import uvicorn
import uvloop

from pmdaemon import __version__
from pmdaemon.api.app import DaemonControl, build_control_app
from pmdaemon.errors import DaemonStartError
from pmdaemon.events import EventBus
from pmdaemon.paths import Home
from pmdaemon.store import Store
from pmdaemon.supervisor import Supervisor

log = logging.getLogger("pmdaemon.daemon")
DAEMON_LOG_MAX = 10 * 1024 * 1024


def prepare_home(home: Home) -> None:
    try:
        home.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if home.root.stat().st_uid == os.getuid():
            os.chmod(home.root, 0o700)
        home.logs_dir.mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        raise DaemonStartError(f"cannot create home {home.root}: {exc.strerror or exc}") from None
    if not os.access(home.root, os.W_OK | os.X_OK):
        raise DaemonStartError(f"home {home.root} is not writable")


def acquire_lock(home: Home) -> int | None:
    """The lock fd, or None when another daemon holds this home."""
    try:
        fd = os.open(home.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise DaemonStartError(f"cannot open {home.lock_file}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def bind_control_socket(path: Path) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # stale: we hold the lock, so no live daemon owns it
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # created 0600: never a moment when others could connect
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise DaemonStartError(f"cannot bind {path}: {exc.strerror}") from None
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    sock.listen(512)
    sock.set_inheritable(False)
    return sock


def redirect_output(home: Home) -> None:
    """Send the daemon's stdout/stderr (and logging) to daemon.log, rotated at start."""
    with contextlib.suppress(OSError):
        if home.daemon_log.stat().st_size > DAEMON_LOG_MAX:
            os.replace(home.daemon_log, home.daemon_log.with_name("daemon.log.1"))
    fd = os.open(home.daemon_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)


class Daemon:
    def __init__(self, home: Home, sock: socket.socket) -> None:
        self.home = home
        self.sock = sock
        self.bus = EventBus()
        self.supervisor = Supervisor(
            home, Store(home.state_file, home.previous_state_file), self.bus
        )
        self.started = time.time()
        self._stop = asyncio.Event()
        self._stopped = asyncio.Event()

    def status(self) -> dict[str, Any]:
        procs = self.supervisor.processes.values()
        return {
            "pid": os.getpid(),
            "version": __version__,
            "home": str(self.home.root),
            "uptime_seconds": int(time.time() - self.started),
            "processes": len(procs),
            "online": sum(1 for p in procs if p.pid is not None),
        }

    async def shutdown(self) -> None:
        self._stop.set()
        await self._stopped.wait()

    async def run(self, ready: Any) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        self.supervisor.load()
        app = build_control_app(self.supervisor, DaemonControl(self.status, self.shutdown))
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
            ws="none",
            http="httptools",
        )
        server = OwnSignalsServer(config)
        serving = loop.create_task(server.serve(sockets=[self.sock]))
        while not server.started and not serving.done():
            await asyncio.sleep(0.005)
        if serving.done():
            serving.result()
            raise DaemonStartError("the control server stopped during start-up")
        await self.supervisor.boot()
        sampler = loop.create_task(self.supervisor.run_sampler())
        ready("ok")
        log.info("daemon %d ready on %s", os.getpid(), self.home.socket)
        await self._stop.wait()
        log.info("stopping: %d processes", len(self.supervisor.processes))
        server.should_exit = True
        sampler.cancel()
        await self.supervisor.shutdown()
        self._stopped.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serving, 5)
        log.info("stopped")


class OwnSignalsServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the daemon owns SIGTERM/SIGINT and shuts the server down itself


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pmdaemon-daemon")
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--ready-fd", type=int, default=None)
    parser.add_argument("--foreground", action="store_true")
    args = parser.parse_args(argv)
    home = Home(args.home.absolute()) if args.home else Home.from_env()
    ready_fd: int | None = args.ready_fd

    def ready(message: str) -> None:
        nonlocal ready_fd
        if ready_fd is not None:
            with contextlib.suppress(OSError):
                os.write(ready_fd, (message + "\n").encode())
                os.close(ready_fd)
            ready_fd = None

    try:
        prepare_home(home)
        lock = acquire_lock(home)
        if lock is None:
            ready("running")
            return 0
        if not args.foreground:
            redirect_output(home)
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        sock = bind_control_socket(home.socket)
        home.pid_file.write_text(f"{os.getpid()}\n")
        os.chmod(home.pid_file, 0o600)
        daemon = Daemon(home, sock)
        try:
            uvloop.run(daemon.run(ready))
        finally:
            with contextlib.suppress(FileNotFoundError):
                home.socket.unlink()
            with contextlib.suppress(FileNotFoundError):
                home.pid_file.unlink()
        return 0
    except DaemonStartError as exc:
        ready(f"error: {exc.message}")
        print(f"pmdaemon daemon: {exc.message}", file=sys.stderr)
        return 1
    except Exception as exc:  # report any start-up failure to the waiting CLI
        ready(f"error: {type(exc).__name__}: {exc}")
        logging.getLogger("pmdaemon.daemon").exception("daemon failed")
        return 1


if __name__ == "__main__":
    sys.exit(main())
