"""The domain model: process states and their legal transitions, the frozen ProcessSpec a
process is started from, and the records kept about its runs."""

from __future__ import annotations

import re
from enum import StrEnum

import msgspec

from pmdaemon.errors import InvalidInput
from pmdaemon.units import shown


class ProcessState(StrEnum):
    STARTING = "starting"
    ONLINE = "online"
    STOPPING = "stopping"
    STOPPED = "stopped"
    RESTARTING = "restarting"
    ERRORED = "errored"


S = ProcessState
TRANSITIONS: dict[ProcessState, frozenset[ProcessState]] = {
    S.STARTING: frozenset({S.ONLINE, S.ERRORED, S.STOPPING, S.RESTARTING, S.STOPPED}),
    S.ONLINE: frozenset({S.STOPPING, S.RESTARTING, S.ERRORED, S.STOPPED}),
    S.STOPPING: frozenset({S.STOPPED}),
    S.STOPPED: frozenset({S.STARTING, S.ERRORED}),
    S.RESTARTING: frozenset({S.STARTING, S.STOPPED, S.ERRORED}),
    S.ERRORED: frozenset({S.STARTING, S.STOPPED}),
}


def can_transition(old: ProcessState, new: ProcessState) -> bool:
    return new in TRANSITIONS[old]


class Desired(StrEnum):
    """What the user asked for; survives daemon restarts (``unless-stopped`` semantics)."""

    RUNNING = "running"
    STOPPED = "stopped"


# PM2 takes any string; spaces are allowed here too ("API Server"), not at either end.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.:@+ -]{0,62}[A-Za-z0-9_.:@+-])?")
NAME_FORMS = (
    "1 to 64 letters, digits, spaces, '_', '.', '-', ':', '@' or '+' (first a letter, digit "
    "or '_', no space last; not all digits, not 'all')"
)


def validate_name(name: object) -> str:
    if not isinstance(name, str):
        raise InvalidInput(f"invalid name {shown(name)}: expected {NAME_FORMS}", {"field": "name"})
    if NAME_PATTERN.fullmatch(name) is None or name.isdigit() or name == "all":
        raise InvalidInput(
            f"invalid name {shown(name)}: expected {NAME_FORMS}",
            {"field": "name", "value": shown(name)},
        )
    return name


class HealthCheck(msgspec.Struct, frozen=True):
    """An HTTP check (2xx within timeout) or a script check (exit 0 within timeout)."""

    type: str  # "http" or "script"
    url: str | None = None
    script: str | None = None
    timeout: float = 5.0
    interval: float = 30.0
    retries: int = 3
    enabled: bool = True


class ProcessSpec(msgspec.Struct, frozen=True):
    """Everything needed to run one process; durations in seconds, sizes in bytes."""

    name: str
    script: str
    args: tuple[str, ...] = ()
    interpreter: str | None = None
    cwd: str = "/"
    env: dict[str, str] = {}
    namespace: str = "default"
    port: int | str | None = None
    autorestart: bool = True
    max_restarts: int | None = 16  # None: unlimited
    min_uptime: float = 1.0
    restart_delay: float = 0.0
    exp_backoff_restart_delay: float | None = None
    stop_exit_codes: tuple[int, ...] = ()
    kill_signal: str = "SIGTERM"
    kill_timeout: float = 1.6
    out_file: str | None = None
    error_file: str | None = None
    instances: int = 1
    env_file: str | None = None
    max_memory_restart: int | None = None
    health_check: HealthCheck | None = None
    wait_ready: bool = False
    wait_timeout: float = 30.0
    time: bool = False
    log_date_format: str | None = None
    max_log_size: int = 10 * 1024 * 1024
    max_log_files: int = 5
    interpreter_args: tuple[str, ...] = ()
    labels: dict[str, str] = {}
    exec_mode: str = "fork"
    enabled: bool = True  # False: created, not started (PMDaemon's instances 0)
    increment_var: str | None = None
    instance_var: str | None = None
    user: str | None = None
    group: str | None = None
    log_file: str | bool | None = None  # True: <name>.log beside the other log files
    merge_logs: bool = False
    pid_file: str | None = None
    log_type: str | None = None  # "json": one JSON object per line (PM2's log_type)
    disable_logs: bool = False
    watch: tuple[str, ...] = ()  # paths relative to cwd; empty: not watched
    ignore_watch: tuple[str, ...] | None = None  # None: PM2's default (dotfiles, node_modules)
    watch_delay: float = 0.0
    cron_restart: str | None = None
    filter_env: bool | tuple[str, ...] = False


class ExitRecord(msgspec.Struct, frozen=True):
    """How one run ended: ``code`` or ``signal`` (None when unknown, e.g. an adopted PID)."""

    code: int | None
    signal: str | None


class RestartRecord(msgspec.Struct, frozen=True):
    at: str
    reason: str
    pid: int | None = None
