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
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import uvicorn
import uvloop
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from pmdaemon import __version__
from pmdaemon.api.app import DaemonControl, build_control_app, read_json
from pmdaemon.api.audit import AuditLog
from pmdaemon.api.server import EmbeddedServer, WebConfig, WebServer
from pmdaemon.errors import DaemonStartError, InvalidInput, PmdError
from pmdaemon.events import EventBus
from pmdaemon.logkeeper import peer_uid, raise_fd_limit
from pmdaemon.logpipes import RETRY_START, KeeperLogs
from pmdaemon.paths import Home
from pmdaemon.store import Store
from pmdaemon.supervisor import Supervisor
from pmdaemon.system import SystemSampler

log = logging.getLogger("pmdaemon.daemon")
DAEMON_LOG_MAX = 10 * 1024 * 1024
LOCK_WAIT = 60.0  # how long a new daemon waits for one that is still stopping its apps


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


def socket_answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def wait_for_lock(home: Home, timeout: float) -> int | None:
    """The lock, once a daemon that holds it but no longer answers (it is shutting down)
    has let go; None if a live daemon answers, or the wait runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if socket_answers(home.socket):
            return None
        time.sleep(0.02)
        lock = acquire_lock(home)
        if lock is not None:
            return lock
    return None


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


class OwnerOnlyProtocol(HttpToolsProtocol):
    """The control socket's HTTP protocol: a connection from any uid but the daemon's own
    is closed before a byte is read, whatever the socket file's mode says."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        uid = peer_uid(sock) if sock is not None else None
        if uid != os.getuid():
            log.warning("refused a control connection from uid %s", uid)
            transport.abort()


class Daemon:
    def __init__(self, home: Home, sock: socket.socket, web: WebConfig | None = None) -> None:
        self.home = home
        self.sock = sock
        self.bus = EventBus()
        self.system = SystemSampler()
        self.logs = KeeperLogs(home.root, home.daemon_log, retry=keeper_retry())
        self.audit = AuditLog(home.audit_log)
        self.supervisor = Supervisor(
            home,
            Store(home.state_file, home.previous_state_file),
            self.bus,
            metrics_interval=metrics_interval(),
            logs=self.logs,
        )
        self.started = time.time()
        self.web_config = web
        self.web_servers: list[WebServer] = []
        self._background: set[asyncio.Task[None]] = set()
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
            "web": [server.info() for server in self.web_servers],
            "event_subscribers": self.bus.subscriber_count,
            "state_saved": not self.supervisor.save_failing,
        }

    async def shutdown(self) -> None:
        self._stop.set()
        await self._stopped.wait()

    async def serve_web(self, request: Request) -> Response:
        """Open a TCP listener for the `pmdaemon web` client on the other end of this
        request; it lives as long as that connection (access log lines stream back)."""
        body = await read_json(request, required=True)
        try:
            config = msgspec.convert(body, WebConfig)
        except msgspec.ValidationError as exc:
            raise InvalidInput(f"invalid web configuration: {exc}") from None
        lines: asyncio.Queue[str] = asyncio.Queue(10_000)

        def sink(line: str) -> None:
            with contextlib.suppress(asyncio.QueueFull):
                lines.put_nowait(line)

        server = WebServer(self.supervisor, self.system, config, access_sink=sink, audit=self.audit)
        url = await server.start()
        self.web_servers.append(server)

        async def stream() -> AsyncIterator[bytes]:
            try:
                yield msgspec.json.encode({"url": url, "auth": server.describe_auth()}) + b"\n"
                while True:
                    yield msgspec.json.encode({"access": await lines.get()}) + b"\n"
            finally:
                # The client went away. This generator is being cancelled (and anyio would
                # cancel any await here too), so the listener is closed by a task of its own.
                self.web_servers.remove(server)
                task = asyncio.get_running_loop().create_task(server.stop())
                self._background.add(task)
                task.add_done_callback(self._background.discard)

        return StreamingResponse(stream(), media_type="application/x-ndjson")

    async def broadcast_metrics(self) -> None:
        """process_metrics and system_metrics for WebSocket clients, only when any listen
        (with none, it sleeps until one subscribes), as often as the most eager asked."""
        while True:
            if not self.bus.subscriber_count:
                await self.bus.activity().wait()
                continue
            await asyncio.sleep(self.bus.metrics_interval())
            if not self.bus.subscriber_count:
                continue
            sup = self.supervisor
            self.bus.publish(
                "process_metrics",
                {
                    "processes": [
                        {  # the names of PMDaemon's api/websocket-api.md
                            "id": p.id,
                            "name": p.spec.name,
                            "cpu": round(p.cpu_usage, 1),
                            "memory": p.memory_usage,
                            "uptime": int(p.uptime_seconds() * 1000),  # milliseconds
                            "restarts": p.restarts,
                        }
                        for p in sup.sorted()
                    ]
                },
            )
            self.bus.publish("system_metrics", self.system.view(sup.counts()))

    async def sample(self, interval: float = 1.0) -> None:
        """Every interval while there is something to sample; otherwise asleep until a
        client subscribes or a process changes state (e.g. one with a memory limit
        starts): an idle, unwatched daemon does not wake at all."""
        while True:
            activity = self.bus.activity()  # taken first: nothing in between is missed
            watched = self.bus.subscriber_count > 0
            busy = self.supervisor.tick(watched=watched)
            if watched:
                self.system.tick()
            if busy or watched:
                await asyncio.sleep(interval)
            else:
                await activity.wait()

    async def run(self, ready: Any) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        self.supervisor.load()
        app = build_control_app(
            self.supervisor,
            DaemonControl(self.system, self.status, self.shutdown, self.serve_web),
        )
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
            ws="none",
            http=OwnerOnlyProtocol,
            date_header=False,
            server_header=False,
        )
        server = EmbeddedServer(config)
        serving = loop.create_task(server.serve(sockets=[self.sock]))
        while not server.started and not serving.done():
            await asyncio.sleep(0.005)
        if serving.done():
            serving.result()
            raise DaemonStartError("the control server stopped during start-up")
        if self.web_config is not None:
            web = WebServer(
                self.supervisor,
                self.system,
                self.web_config,
                access_sink=lambda line: print(line, flush=True),
                audit=self.audit,
            )
            try:
                url = await web.start()
            except PmdError as exc:
                raise DaemonStartError(exc.message) from None
            self.web_servers.append(web)
            print(f"pmdaemon web API on {url} ({web.describe_auth()})", flush=True)
        try:
            self.logs.ensure()
        except OSError as exc:
            log.error("no log keeper (%s): apps write their log files directly", exc)
        await self.supervisor.boot()
        tasks = [
            loop.create_task(self.sample(self.supervisor.metrics_interval)),
            loop.create_task(self.broadcast_metrics()),
        ]
        ready("ok")
        log.info("daemon %d ready on %s", os.getpid(), self.home.socket)
        await self._stop.wait()
        log.info("stopping: %d processes", len(self.supervisor.processes))
        # Keep answering while the apps stop: `list` shows them stopping, and new work is
        # refused with a reason instead of a refused connection that would start a second
        # daemon. The listeners close once every app is down.
        await self.supervisor.shutdown()
        self.logs.close()
        for task in tasks:
            task.cancel()
        server.should_exit = True
        await asyncio.gather(*(web.stop() for web in self.web_servers))
        self._stopped.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(serving, 5)
        log.info("stopped")


def metrics_interval() -> float:
    """Seconds between CPU and memory samples: $PMDAEMON_METRICS_INTERVAL, else 1."""
    return _seconds("PMDAEMON_METRICS_INTERVAL", 1.0, 0.1, 60)


def keeper_retry() -> float:
    """Seconds between attempts to start a log keeper after one failed:
    $PMDAEMON_KEEPER_RETRY, else 30."""
    return _seconds("PMDAEMON_KEEPER_RETRY", RETRY_START, 1, 3600)


def _seconds(name: str, default: float, low: float, high: float) -> float:
    raw = os.environ.get(name, str(default))
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not low <= value <= high:
        log.warning("%s=%r is not %g to %g seconds; using %g", name, raw[:20], low, high, default)
        return default
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pmdaemon-daemon")
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--ready-fd", type=int, default=None)
    parser.add_argument("--foreground", action="store_true")
    parser.add_argument("--web-config-fd", type=int, default=None)
    args = parser.parse_args(argv)
    web: WebConfig | None = None
    if args.web_config_fd is not None:
        with os.fdopen(args.web_config_fd, "rb") as f:
            web = msgspec.json.decode(f.read(), type=WebConfig)
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
        lock = acquire_lock(home) or wait_for_lock(home, LOCK_WAIT)
        if lock is None:
            if web is not None:
                raise DaemonStartError(
                    f"a daemon started for {home.root} meanwhile; run `pmdaemon web` again "
                    "to serve its processes"
                )
            ready("running")
            return 0
        if not args.foreground:
            redirect_output(home)
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        raise_fd_limit()  # a pidfd and a pipe end or two per process
        sock = bind_control_socket(home.socket)
        home.pid_file.write_text(f"{os.getpid()}\n")
        os.chmod(home.pid_file, 0o600)
        os.chdir("/")
        daemon = Daemon(home, sock, web)
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
