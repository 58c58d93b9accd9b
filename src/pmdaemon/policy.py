"""The restart policy: pure functions of a spec, how the last run ended and how long it
lasted. No clock, no I/O, so every rule is testable on its own."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pmdaemon.model import ExitRecord, ProcessSpec

MAX_BACKOFF = 15.0
BACKOFF_FACTOR = 1.5
BACKOFF_RESET_AFTER = 30.0


class Action(StrEnum):
    RESTART = "restart"
    STOP = "stop"
    ERRORED = "errored"


@dataclass(frozen=True)
class Counters:
    unstable: int = 0  # consecutive runs shorter than min_uptime
    crashes: int = 0  # consecutive exits without 30 s of stable running (backoff streak)


@dataclass(frozen=True)
class Decision:
    action: Action
    delay: float
    reason: str
    counters: Counters


def describe_exit(exit: ExitRecord) -> str:
    if exit.signal is not None:
        return f"killed by {exit.signal}"
    if exit.code is not None:
        return f"exited with code {exit.code}"
    return "exited (status unknown)"


def after_exit(
    spec: ProcessSpec, exit: ExitRecord, run_time: float, counters: Counters
) -> Decision:
    """What to do when a run that should have kept going has ended."""
    reason = describe_exit(exit)
    if not spec.autorestart:
        return Decision(Action.STOP, 0.0, f"{reason}; autorestart is off", Counters())
    if exit.code is not None and exit.signal is None and exit.code in spec.stop_exit_codes:
        return Decision(Action.STOP, 0.0, f"{reason}, listed in stop_exit_codes", Counters())
    unstable = counters.unstable + 1 if run_time < spec.min_uptime else 0
    crashes = counters.crashes + 1 if run_time < BACKOFF_RESET_AFTER else 1
    new = Counters(unstable, crashes)
    if spec.max_restarts is not None and unstable > spec.max_restarts:
        return Decision(
            Action.ERRORED,
            0.0,
            f"{reason}; {unstable} consecutive runs shorter than min_uptime "
            f"({spec.min_uptime:g}s) exceeded max_restarts ({spec.max_restarts})",
            new,
        )
    return Decision(Action.RESTART, restart_delay(spec, crashes), reason, new)


def restart_delay(spec: ProcessSpec, crashes: int) -> float:
    if spec.exp_backoff_restart_delay is None:
        return spec.restart_delay
    grown = spec.exp_backoff_restart_delay * BACKOFF_FACTOR ** max(crashes - 1, 0)
    return min(grown, MAX_BACKOFF)
