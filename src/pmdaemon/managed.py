"""One managed process: its state machine, its child, and what happens when the child
exits. Operations on one process are serialised by its lock; exits arrive through a pidfd
on the event loop, so a crash is noticed the moment it happens."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pmdaemon import __version__, launcher, proctree
from pmdaemon.errors import InvalidTransition, OperationFailed, ProcessNotFound, SpawnError
from pmdaemon.health import run_check
from pmdaemon.logpipes import DirectLogs, KeeperRefused, LogSettings, Outputs, Stream
from pmdaemon.logstamp import DEFAULT_FORMAT, pattern_of, split_stamp
from pmdaemon.model import (
    Desired,
    ExitRecord,
    HealthCheck,
    ProcessSpec,
    ProcessState,
    RestartRecord,
)
from pmdaemon.paths import Home
from pmdaemon.policy import Action, Counters, after_exit, describe_exit
from pmdaemon.store import ProcessRecord
from pmdaemon.units import format_timestamp, format_uptime

log = logging.getLogger("pmdaemon.process")
HISTORY = 20

ChangeHook = Callable[["ManagedProcess", ProcessState, str | None], None]
HealthHook = Callable[["ManagedProcess", str | None], None]
STARTUP_POLL = 0.5  # seconds between checks until the first success


@dataclass
class HealthState:
    """What the checks of the current run found."""

    status: str = "unknown"  # unknown → healthy / unhealthy
    last_check_at: float | None = None
    response_ms: float | None = None
    last_error: str | None = None
    failures: int = 0  # consecutive
    output: tuple[str, ...] = ()
    total_checks: int = 0  # of this run
    successful_checks: int = 0
    healthy: asyncio.Event = field(default_factory=asyncio.Event)

    def view(self, check: HealthCheck) -> dict[str, Any]:
        """The check and what it found, in the names of PMDaemon's api/rest-api.md."""
        return {
            "enabled": check.enabled,
            "check_type": check.type,
            "url": check.url,
            "script": check.script,
            "interval": check.interval,
            "timeout": check.timeout,
            "retries": check.retries,
            "status": self.status,
            "last_check": format_timestamp(self.last_check_at) if self.last_check_at else None,
            "response_time": None if self.response_ms is None else round(self.response_ms),
            "last_error": self.last_error,
            "consecutive_failures": self.failures,
            "total_checks": self.total_checks,
            "successful_checks": self.successful_checks,
            "success_rate": round(100 * self.successful_checks / self.total_checks, 1)
            if self.total_checks
            else None,
            "output": list(self.output),
        }


def signal_name(number: int) -> str:
    """``SIGKILL`` for 9; real-time signals have no enum member: ``SIG35``."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIG{number}"


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _end_at_once(popen: subprocess.Popen[bytes]) -> bool:
    """SIGKILL a child just started, with its group; True once it is reaped."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, signal.SIGKILL)  # its own session and group
    with contextlib.suppress(ProcessLookupError, PermissionError):
        popen.kill()
    try:
        popen.wait(timeout=2)
    except subprocess.TimeoutExpired:
        return False
    return True


def _filtered(env: Mapping[str, str], rule: bool | tuple[str, ...]) -> dict[str, str]:
    """The captured environment after PM2's filter_env: true keeps none of it; names drop
    the variables whose names contain one of them."""
    if rule is True:
        return {}
    if not rule:
        return dict(env)
    return {k: v for k, v in env.items() if not any(part in k for part in rule)}


DISCARD = Path(os.devnull)  # disable_logs: the output goes nowhere


def _iso(ts: float | None) -> str | None:
    return None if ts is None else format_timestamp(ts)


class ManagedProcess:
    def __init__(
        self,
        record: ProcessRecord,
        home: Home,
        on_change: ChangeHook,
        logs: DirectLogs | None = None,
    ) -> None:
        self.id = record.id
        self.spec: ProcessSpec = record.spec
        self.base_env = record.base_env
        self.desired = record.desired
        self.created_at = record.created_at
        self.restarts = record.restarts
        self.exit_code = record.exit_code
        self.exit_signal = record.exit_signal
        self.last_restart_reason = record.last_restart_reason
        self.history: deque[RestartRecord] = deque(record.restart_history, maxlen=HISTORY)
        # A port given to `restart --port` holds for that run (and its crash restarts) only.
        self.port_override = record.port_override
        self.group = record.group
        self.instance = record.instance
        self.assigned_port = record.assigned_port
        self.stopped_by_user = record.stopped_by_user
        self.source = record.source
        self.next_cron_at: float | None = None  # wall time of the next cron_restart
        self.watch_problem: str | None = None  # why its files are not (all) watched
        # A loaded process is stopped until boot starts or adopts it; errored stays errored.
        self.state = (
            ProcessState.ERRORED if record.status == ProcessState.ERRORED else ProcessState.STOPPED
        )
        self.pid: int | None = None
        self.pid_start_ticks: int | None = None
        self.started_at: float | None = None
        self.last_error: str | None = None
        self.cpu_usage = 0.0
        self.memory_usage = 0
        self._home = home
        self._logs = logs or DirectLogs()
        self._log_streams: list[Stream] = []  # the log pipes of the current run
        # Where the current run's output begins in each log file (for followers).
        self.log_starts: dict[str, int] = {}
        self._on_change = on_change
        self._lock = asyncio.Lock()
        self._popen: subprocess.Popen[bytes] | None = None
        self._pidfd: int | None = None
        self._started_mono = 0.0
        self._exited = asyncio.Event()
        self._counters = Counters()
        self._restart_task: asyncio.Task[None] | None = None
        self._pending_ended: int | None = None  # the run a pending restart replaces
        self.deleted = False  # set under the lock by delete: later operations must not spawn
        self.health: HealthState | None = None  # of the current run; None without a check
        self._health_task: asyncio.Task[None] | None = None
        self.on_health: HealthHook | None = None
        self._run_env: dict[str, str] = {}
        self._account = launcher.Account()
        self._tasks: set[asyncio.Task[None]] = set()
        self._unhealthy_starts = 0  # consecutive runs restarted before their first success
        self.last_exit = ExitRecord(record.exit_code, record.exit_signal)  # kept across runs

    # -- views --------------------------------------------------------------------------

    @property
    def _log_name(self) -> str:
        """Whose default log files: the group's own with merge_logs, else the process's."""
        return self.group if self.group and self.spec.merge_logs else self.spec.name

    @property
    def out_log(self) -> Path:
        if self.spec.disable_logs:
            return DISCARD
        if self.spec.out_file:
            return Path(self.spec.cwd, self.spec.out_file)
        return self._home.out_log(self._log_name)

    @property
    def error_log(self) -> Path:
        if self.spec.disable_logs:
            return DISCARD
        if self.spec.error_file:
            return Path(self.spec.cwd, self.spec.error_file)
        return self._home.error_log(self._log_name)

    def log_settings(self) -> LogSettings:
        combined = self._home.logs_dir / f"{self._log_name}.log"
        return LogSettings.of(self.spec, str(combined), self.id)

    @property
    def combined_log(self) -> Path | None:
        """The log_file of this run, if it has one."""
        path = self.log_settings().combined
        return Path(path) if path else None

    @property
    def port(self) -> int | None:
        return self.port_override if self.port_override is not None else self.assigned_port

    def uptime_seconds(self) -> float:
        if self.pid is None or self.started_at is None:
            return 0.0
        return max(0.0, time.time() - self.started_at)

    def view(self) -> dict[str, Any]:
        """The §3.4 view shown by list, the API and the WebSocket."""
        up = self.uptime_seconds()
        return {
            "id": self.id,
            "name": self.spec.name,
            "namespace": self.spec.namespace,
            "status": self.state.value,
            "pid": self.pid,
            "port": self.port,
            "instance": self.instance,
            "cpu_usage": round(self.cpu_usage, 1),
            "memory_usage": self.memory_usage,
            "uptime": format_uptime(up) if self.pid is not None else "0s",
            "uptime_seconds": int(up),
            "restarts": self.restarts,
            "health_status": self.health.status
            if self.health is not None and self.pid
            else ("unknown" if self._check() is not None else None),
            "exit_code": self.exit_code,
            "last_restart_reason": self.last_restart_reason,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at) if self.pid is not None else None,
        }

    def log_entry(self, stream: str, line: str) -> dict[str, Any]:
        """A log line as the API shows it: the stamp the log keeper put in front of it (for
        ``time`` or ``log_date_format``) split off into ``timestamp``."""
        fmt = self.spec.log_date_format or (DEFAULT_FORMAT if self.spec.time else None)
        stamp, message = split_stamp(pattern_of(fmt) if fmt else None, line)
        return {
            "timestamp": stamp,
            "type": stream,
            "name": self.spec.name,
            "id": self.id,
            "message": message,
            # PMDaemon's names (api/websocket-api.md's log_message)
            "process": self.spec.name,
            "instance": self.instance,
            "stream": "stdout" if stream == "out" else "stderr",
            "level": "info" if stream == "out" else "error",
        }

    def record(self) -> ProcessRecord:
        return ProcessRecord(
            id=self.id,
            spec=self.spec,
            base_env=self.base_env,
            desired=self.desired,
            created_at=self.created_at,
            restarts=self.restarts,
            status=self.state.value,
            pid=self.pid,
            pid_start_ticks=self.start_ticks(),
            started_at=self.started_at,
            exit_code=self.exit_code,
            exit_signal=self.exit_signal,
            last_restart_reason=self.last_restart_reason,
            restart_history=list(self.history),
            port_override=self.port_override,
            group=self.group,
            instance=self.instance,
            assigned_port=self.assigned_port,
            stopped_by_user=self.stopped_by_user,
            source=self.source,
        )

    def start_ticks(self) -> int | None:
        """The kernel start time of the current run (the guard against a reused PID)."""
        if self.pid is not None and self.pid_start_ticks is None:
            self.pid_start_ticks = proctree.start_ticks(self.pid)
        return self.pid_start_ticks

    def environment(self) -> dict[str, str]:
        """Captured environment < env_file (read now) < env < the injected variables."""
        env = _filtered(self.base_env, self.spec.filter_env)
        if self.spec.env_file:
            env.update(launcher.read_env_file(Path(self.spec.cwd, self.spec.env_file)))
        env.update(self.spec.env)
        var = self.spec.increment_var
        if var is not None and var in self.spec.env and not (var == "PORT" and self.port):
            env[var] = str(int(self.spec.env[var]) + self.instance)  # PM2's increment_var
        if self.port is not None:
            env["PORT"] = str(self.port)  # an assigned port wins over PORT in env
        if self.spec.instance_var:
            env[self.spec.instance_var] = str(self.instance)
        if self.spec.user is not None:  # as su, sudo and systemd's User= do
            env.update(launcher.account_environment(self.spec.user))
        env.update(
            PMDAEMON_HOME=str(self._home.root),  # as PM2_HOME: `pmdaemon` run by the app
            PMDAEMON_ID=str(self.id),
            PMDAEMON_NAME=self.spec.name,
            PMDAEMON_PROCESS_ID=str(self.id),  # PMDaemon's names for the same two
            PMDAEMON_PROCESS_NAME=self.spec.name,
            PMDAEMON_VERSION=__version__,
            PMDAEMON_INSTANCE=str(self.instance),
            PMDAEMON_NAMESPACE=self.spec.namespace,
            PM2_INSTANCE_ID=str(self.instance),
            NODE_APP_INSTANCE=str(self.instance),
        )
        return env

    # -- transitions ----------------------------------------------------------------------

    def _set_state(self, new: ProcessState, reason: str | None = None) -> None:
        old = self.state
        if old == new:
            return
        self.state = new
        self._on_change(self, old, reason)

    def _note_restart(self, reason: str, ended: int | None) -> None:
        """Count a restart; ``ended`` is the PID of the run it replaces (None if none ran)."""
        self.restarts += 1
        self.last_restart_reason = reason
        self.history.append(RestartRecord(at=_iso(time.time()) or "", reason=reason, pid=ended))

    def _spawn(self, reason: str | None = None, *, again: bool = False, check: bool = True) -> None:
        """Start the child now (the caller holds the lock). On failure the process is
        errored and SpawnError propagates. ``again``: a restart after an exit, whose pipes
        go to the keeper after the spawn (see ``_launch``); ``check``: open the log files
        first to see that they can be written (skipped when they were in use a moment
        ago)."""
        self._set_state(ProcessState.STARTING, reason)
        try:
            env = self.environment()
            argv = launcher.command_line(self.spec, env)
            self._account = launcher.account(self.spec.user, self.spec.group)
            popen, outputs = self._launch(argv, env, again=again, check=check)
            try:
                pidfd = os.pidfd_open(popen.pid)
            except OSError as exc:  # out of descriptors: never leave a child nobody watches
                popen.kill()
                popen.wait()
                self._logs.release(outputs.streams)
                raise SpawnError(f"cannot watch the new process: {exc.strerror}") from None
        except (SpawnError, ValueError, OSError) as exc:
            message = exc.message if isinstance(exc, SpawnError) else f"cannot start: {exc}"
            self.last_error = message
            self._set_state(ProcessState.ERRORED, message)
            if isinstance(exc, SpawnError):
                raise
            raise SpawnError(message) from None
        self._run_env = env
        self._log_streams = outputs.streams
        self._watch(popen.pid, popen, pidfd)
        self.exit_code = None
        self.exit_signal = None
        self.last_error = None
        self._set_state(ProcessState.ONLINE)
        self._start_health_checks()

    def _launch(
        self, argv: list[str], env: dict[str, str], *, again: bool, check: bool
    ) -> tuple[subprocess.Popen[bytes], Outputs]:
        """The child, started with its outputs. On a restart its pipes are handed to the
        log keeper once it runs (the round trip to the keeper is then not on the way to the
        new process; its first lines wait in the pipes); if the keeper does not take them,
        that child is ended at once and started again writing its files itself, so no run
        keeps pipes nobody reads."""
        outputs = self._open_outputs(check=check, later=again)
        self.log_starts = {"out": _size(self.out_log), "error": _size(self.error_log)}
        try:
            popen = launcher.spawn(argv, self.spec.cwd, env, outputs, self._account)
        except SpawnError:
            self._logs.release(outputs.streams)
            raise
        try:
            self._logs.settle(outputs)
        except KeeperRefused as exc:
            if not _end_at_once(popen):
                log.error(
                    "the log keeper refused the pipes of %s (%s), and its new process %d "
                    "could not be ended: it runs with pipes nobody reads",
                    self.spec.name,
                    exc,
                    popen.pid,
                )
                return popen, outputs
            self._logs.release(outputs.streams)
            log.error(
                "the log keeper refused the pipes of %s (%s); started again writing its "
                "files itself",
                self.spec.name,
                exc,
            )
            outputs = self._open_outputs(direct=True)
            popen = launcher.spawn(argv, self.spec.cwd, env, outputs, self._account)
        except BaseException as exc:  # never leave a child nobody watches
            _end_at_once(popen)
            self._logs.release(outputs.streams)
            if isinstance(exc, Exception):
                raise SpawnError(f"cannot start: {exc}") from exc
            raise
        return popen, outputs

    def _open_outputs(
        self, *, check: bool = True, later: bool = False, direct: bool = False
    ) -> Outputs:
        try:
            if direct:
                return self._logs.files(self.out_log, self.error_log)
            return self._logs.outputs(
                self.out_log, self.error_log, self.log_settings(), check=check, later=later
            )
        except OSError as exc:
            raise SpawnError(
                f"cannot open log file: {exc.strerror or exc} ({exc.filename or self.out_log})"
            ) from None

    def _watch(
        self, pid: int, popen: subprocess.Popen[bytes] | None, pidfd: int | None = None
    ) -> None:
        self._popen = popen
        self.pid = pid
        # A child we just spawned may still be inside exec, and reading its /proc entry
        # then waits for the exec to finish (milliseconds, on the restart path): its start
        # time is read when first needed (the state write, a moment later) instead.
        self.pid_start_ticks = proctree.start_ticks(pid) if popen is None else None
        self._started_mono = time.monotonic()
        if self.started_at is None or popen is not None:
            self.started_at = time.time()
        self._exited = asyncio.Event()
        self._pidfd = os.pidfd_open(pid) if pidfd is None else pidfd
        asyncio.get_running_loop().add_reader(self._pidfd, self._on_exit)
        self.health = HealthState() if self._check() is not None else None
        self._write_pid_file(pid)

    @property
    def pid_file(self) -> Path | None:
        return Path(self.spec.cwd, self.spec.pid_file) if self.spec.pid_file else None

    def _write_pid_file(self, pid: int) -> None:
        """pid_file holds the PID of the current run (written whole, by a rename)."""
        path = self.pid_file
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # mkstemp creates a new file (O_EXCL: a planted symlink is never followed);
            # the rename replaces a link at ``path`` itself, not what it points to.
            fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            try:
                os.write(fd, f"{pid}\n".encode())
                os.fchmod(fd, 0o644)
            finally:
                os.close(fd)
            os.replace(partial, path)
        except OSError as exc:
            log.warning("%s: cannot write pid_file %s: %s", self.spec.name, path, exc)

    def _remove_pid_file(self, pid: int | None) -> None:
        """Remove pid_file once its run ended, unless it names another PID by then."""
        path = self.pid_file
        if path is None or pid is None:
            return
        with contextlib.suppress(OSError, ValueError):
            if int(path.read_text().strip() or "0") == pid:
                path.unlink()

    def adopt(self, pid: int, ticks: int | None, started_at: float | None) -> bool:
        """Watch a child left running by a previous daemon instead of starting a new one."""
        if not proctree.is_same_process(pid, ticks):
            return False
        try:
            self.started_at = started_at
            self._watch(pid, None)
            self._log_streams = self._logs.adopt(
                pid, self.out_log, self.error_log, self.log_settings()
            )
        except OSError:
            self.pid = None
            return False
        self._set_state(ProcessState.ONLINE, "adopted")
        self._start_health_checks()
        return True

    def _reap(self) -> ExitRecord:
        if self._popen is not None:
            code = self._popen.poll()
            if code is None:  # pidfd said it exited; collect it for sure
                code = self._popen.wait()
        else:
            try:
                _, status = os.waitpid(self.pid or -1, os.WNOHANG)
                code = os.waitstatus_to_exitcode(status)
            except ChildProcessError:
                return ExitRecord(None, None)  # adopted: not our child, the status is unknown
        if code < 0:
            return ExitRecord(None, signal_name(-code))
        return ExitRecord(code, None)

    def _on_exit(self) -> None:
        loop = asyncio.get_running_loop()
        ended = self.pid
        assert self._pidfd is not None
        loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = None
        try:
            exit = self._reap()
        except Exception:  # never leave a dead PID looking alive
            log.exception("could not collect the exit status of pid %s", self.pid)
            exit = ExitRecord(None, None)
        finally:
            run_time = time.monotonic() - self._started_mono
            self._stop_health_checks()
            self._remove_pid_file(self.pid)
            self.pid = None
            self.pid_start_ticks = None
            self._popen = None
            self._logs.release(self._log_streams)
            self.cpu_usage, self.memory_usage = 0.0, 0
            self._exited.set()
        self.exit_code, self.exit_signal = exit.code, exit.signal
        self.last_exit = exit
        if self.state == ProcessState.STOPPING or self.desired == Desired.STOPPED:
            return  # a stop or restart in progress owns what happens next
        decision = after_exit(self.spec, exit, run_time, self._counters)
        self._counters = decision.counters
        if decision.action == Action.RESTART:
            self._set_state(ProcessState.RESTARTING, decision.reason)
            if decision.delay <= 0 and not self._lock.locked():
                # Nothing else can run before this returns, so the lock is not needed: the
                # new child starts in this very callback, and the exit is logged after it.
                try:
                    self._restart_now(decision.reason, ended, immediate=True)
                except Exception as exc:  # an exit callback must leave a known state
                    log.exception("restarting %s failed", self.spec.name)
                    self.last_error = f"cannot restart: {exc}"
                    self._set_state(ProcessState.ERRORED, self.last_error)
            else:
                self._pending_ended = ended
                self._restart_task = loop.create_task(
                    self._restart_after(decision.delay, decision.reason, ended)
                )
            log.info("%s (id %d) %s", self.spec.name, self.id, describe_exit(exit))
            return
        log.info("%s (id %d) %s", self.spec.name, self.id, describe_exit(exit))
        if decision.action == Action.STOP:
            self.desired = Desired.STOPPED
            self._set_state(ProcessState.STOPPED, decision.reason)
        else:
            self.last_error = decision.reason
            self._set_state(ProcessState.ERRORED, decision.reason)

    async def _restart_after(self, delay: float, reason: str, ended: int | None) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        async with self._lock:
            if (
                self.deleted
                or self.state != ProcessState.RESTARTING
                or self.desired != Desired.RUNNING
            ):
                return
            self._restart_task = None
            self._restart_now(reason, ended)

    def _restart_now(self, reason: str, ended: int | None, *, immediate: bool = False) -> None:
        self._note_restart(reason, ended)
        with contextlib.suppress(SpawnError):
            # Right after the exit the log files were just written: no need to try them.
            self._spawn(reason, again=True, check=not immediate)

    def _cancel_pending_restart(self) -> None:
        if self._restart_task is not None:
            self._restart_task.cancel()
            self._restart_task = None

    async def _terminate(self, reason: str | None = None) -> None:
        """Stop the running child and its whole tree (the caller holds the lock)."""
        if self.pid is None:
            return
        self._set_state(ProcessState.STOPPING, reason)
        self._stop_health_checks()
        gone = await proctree.kill_tree(
            self.pid, self._exited, signal.Signals[self.spec.kill_signal], self.spec.kill_timeout
        )
        if self.pid is not None:
            # Even SIGKILL did not end it (e.g. stuck in uninterruptible I/O): say so rather
            # than pretend it stopped or start a second copy beside it.
            raise OperationFailed(
                f"process {self.spec.name!r} (pid {self.pid}) did not exit after SIGKILL"
            )
        if not gone:
            log.warning("%s: part of the process tree survived SIGKILL", self.spec.name)

    # -- operations -----------------------------------------------------------------------

    def _check_not_deleted(self) -> None:
        if self.deleted:
            raise ProcessNotFound(
                f"process {self.spec.name!r} was deleted", {"id": self.id, "name": self.spec.name}
            )

    async def start(self) -> bool:
        """Start if not running; True when a child was started."""
        async with self._lock:
            self._check_not_deleted()
            self.desired = Desired.RUNNING
            self.stopped_by_user = False
            if self.pid is not None:
                return False
            self._cancel_pending_restart()
            self._counters = Counters()
            self._spawn()
            return True

    async def delete(self) -> None:
        """Stop for good: once this returns no queued operation can start it again."""
        async with self._lock:
            self.desired = Desired.STOPPED
            self.deleted = True
            self._cancel_pending_restart()
            await self._terminate()
            self._set_state(ProcessState.STOPPED)

    async def stop(self, *, keep_desired: bool = False) -> None:
        async with self._lock:
            if not keep_desired:
                self.desired = Desired.STOPPED
                self.stopped_by_user = True
                self.port_override = None
            self._cancel_pending_restart()
            await self._terminate()
            self._set_state(ProcessState.STOPPED)

    async def restart(
        self,
        reason: str = "manual",
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        *,
        keep_port: bool = False,
        unless: Callable[[ManagedProcess], bool] | None = None,
    ) -> None:
        """Stop (if running) and start again. ``port`` overrides the configured port for
        this run only; ``keep_port`` keeps the current override (restarts the daemon
        decides on, such as a memory limit, continue the same run)."""
        async with self._lock:
            self._check_not_deleted()
            if unless is not None and unless(self):  # (restarts the daemon decides on)
                return
            ended = self.pid
            if ended is None and self._restart_task is not None:
                ended = self._pending_ended  # it replaces that pending restart
            self._cancel_pending_restart()
            await self._terminate(reason)
            if env is not None:
                self.base_env = dict(env)
            if not keep_port:
                self.port_override = port
            self.desired = Desired.RUNNING
            self.stopped_by_user = False
            self._counters = Counters()
            self._note_restart(reason, ended)
            self._spawn(reason)

    async def wait_stable(self, duration: float) -> str | None:
        """None when the current run stays up for ``duration``; otherwise why not."""
        exited = self._exited
        if self.pid is None:
            return f"{self.spec.name} is {self.state.value}, not running"
        try:
            await asyncio.wait_for(exited.wait(), duration)
        except TimeoutError:
            return None
        ended = describe_exit(self.last_exit)
        return f"{self.spec.name} {ended} within min_uptime ({duration:g}s)"

    # -- health ---------------------------------------------------------------------------

    def _check(self) -> HealthCheck | None:
        check = self.spec.health_check
        return check if check is not None and check.enabled else None

    def _start_health_checks(self) -> None:
        check = self._check()
        if check is None or self.pid is None:
            return
        self._stop_health_checks()
        self._health_task = asyncio.get_running_loop().create_task(
            self._health_loop(check, self.pid)
        )

    def _stop_health_checks(self) -> None:
        if self._health_task is not None:
            self._health_task.cancel()
            self._health_task = None

    async def _health_loop(self, check: HealthCheck, pid: int) -> None:
        """Check on the check's interval while this run is online (faster until the first
        success, but start-up failures count no faster than the interval)."""
        state = self.health
        assert state is not None
        last_counted = time.monotonic()
        while True:
            await asyncio.sleep(STARTUP_POLL if state.status == "unknown" else check.interval)
            if self.pid != pid or self.state != ProcessState.ONLINE:
                return
            result = await run_check(check, self.spec.cwd, self._run_env, self._account)
            if self.pid != pid or self.state != ProcessState.ONLINE:
                return
            state.last_check_at = time.time()
            state.total_checks += 1
            state.successful_checks += result.ok
            state.response_ms = result.response_ms
            state.output = result.output
            previous = state.status
            if result.ok:
                state.failures = 0
                state.last_error = None
                state.status = "healthy"
                state.healthy.set()
                self._unhealthy_starts = 0
            else:
                state.last_error = result.error
                now = time.monotonic()
                if previous != "unknown" or now - last_counted >= check.interval:
                    state.failures += 1
                    last_counted = now
                # Until its first success an app has wait_timeout to start up.
                starting = previous == "unknown" and (
                    now - self._started_mono < self.spec.wait_timeout
                )
                if state.failures >= check.retries and not starting:
                    state.status = "unhealthy"
            if state.status != previous and self.on_health is not None:
                self.on_health(self, previous)
            if state.status == "unhealthy":
                reason = f"health check failed {state.failures} times: {state.last_error}"
                never = not state.healthy.is_set()
                task = asyncio.get_running_loop().create_task(
                    self._restart_unhealthy(reason, pid, never)
                )
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                return

    async def _restart_unhealthy(self, reason: str, pid: int, never_healthy: bool) -> None:
        """Restart an unhealthy run; runs that never became healthy count like crashes,
        so an app that cannot come up ends errored instead of restarting forever."""
        if self.pid != pid:
            return  # it changed meanwhile (stopped, crashed, restarted)
        self._unhealthy_starts = self._unhealthy_starts + 1 if never_healthy else 0
        if self.spec.max_restarts is not None and self._unhealthy_starts > self.spec.max_restarts:
            with contextlib.suppress(Exception):
                await self.stop(keep_desired=True)
            self.last_error = (
                f"{reason}; never healthy in {self._unhealthy_starts} runs, "
                f"more than max_restarts ({self.spec.max_restarts})"
            )
            self._set_state(ProcessState.ERRORED, self.last_error)
            return
        with contextlib.suppress(Exception):
            await self.restart(reason, keep_port=True)

    async def wait_ready(self, timeout: float) -> str | None:
        """None once the current run is ready (healthy, or up for min_uptime without a
        check); otherwise why not, after at most ``timeout`` seconds."""
        if self._check() is None:
            return await self.wait_stable(self.spec.min_uptime)
        state, exited = self.health, self._exited
        if state is None or self.pid is None:
            return f"{self.spec.name} is {self.state.value}, not running"
        waiters = {
            asyncio.ensure_future(state.healthy.wait()),
            asyncio.ensure_future(exited.wait()),
        }
        _, pending = await asyncio.wait(
            waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        for waiter in pending:
            waiter.cancel()
        if state.healthy.is_set():
            return None
        if exited.is_set():
            return f"{self.spec.name} {describe_exit(self.last_exit)} before it was healthy"
        return f"{self.spec.name} not healthy within {timeout:g}s" + (
            f": {state.last_error}" if state.last_error else ""
        )

    def ready(self) -> bool:
        if self.pid is None or self.state != ProcessState.ONLINE:
            return False
        if self._check() is not None:
            return self.health is not None and self.health.status == "healthy"
        return time.monotonic() - self._started_mono >= self.spec.min_uptime

    def reset_counters(self) -> None:
        """PM2's reset: the restart count and the streaks of unstable runs start from 0
        (the restart history is kept: it says what happened)."""
        self.restarts = 0
        self._counters = Counters()
        self._unhealthy_starts = 0

    def run_environment(self) -> dict[str, str]:
        """The environment of the current run, or, when none runs, the one a start would
        give now."""
        return dict(self._run_env) if self.pid is not None else self.environment()

    def send_signal(self, sig: signal.Signals) -> None:
        if self.pid is None:
            raise InvalidTransition(
                f"process {self.spec.name!r} is {self.state.value}, not running"
            )
        os.kill(self.pid, sig)
