"""The exception hierarchy: one class per thing that can go wrong from a caller's view.

Each class has a stable ``code`` that travels over the wire, so the client can rebuild the
same exception and the CLI can pick an exit code without parsing messages.
"""

from __future__ import annotations

# typing is only for the type checker: importing it costs the CLI ~3 ms on every command.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class PmdError(Exception):
    """Base of every error pmdaemon reports to a user."""

    code = "OPERATION_FAILED"
    label = "Operation failed"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}


class InvalidInput(PmdError):
    """A value given by the caller is malformed (name, duration, size, field)."""

    code = "INVALID_CONFIGURATION"
    label = "Invalid configuration"


class ConfigError(InvalidInput):
    """An ecosystem file or a configuration field is invalid."""


class ProcessNotFound(PmdError):
    code = "PROCESS_NOT_FOUND"
    label = "Process not found"


class ProcessExists(PmdError):
    code = "PROCESS_ALREADY_EXISTS"
    label = "Process already exists"


class PortConflict(PmdError):
    code = "PORT_CONFLICT"
    label = "Port conflict"


class SpawnError(PmdError):
    """The program could not be started at all (missing, not executable, bad cwd)."""

    code = "SPAWN_FAILED"
    label = "Spawn failed"


class InvalidTransition(PmdError):
    code = "INVALID_STATE"
    label = "Invalid state"


class OperationFailed(PmdError):
    code = "OPERATION_FAILED"
    label = "Operation failed"


class ReloadStopped(PmdError):
    """A rolling reload stopped because an instance did not come up: the app's failure,
    not the daemon's (the instances not yet reloaded keep running)."""

    code = "RELOAD_STOPPED"
    label = "Reload stopped"


class DaemonStopping(PmdError):
    """The daemon is shutting down and takes no new work."""

    code = "DAEMON_STOPPING"
    label = "Daemon stopping"


class DaemonNotRunning(PmdError):
    code = "DAEMON_NOT_RUNNING"
    label = "Daemon not running"


class DaemonStartError(PmdError):
    code = "DAEMON_START_FAILED"
    label = "Daemon start failed"


ERRORS_BY_CODE: dict[str, type[PmdError]] = {
    cls.code: cls
    for cls in (
        PmdError,
        InvalidInput,
        ProcessNotFound,
        ProcessExists,
        PortConflict,
        SpawnError,
        InvalidTransition,
        DaemonNotRunning,
        DaemonStartError,
        DaemonStopping,
    )
}
