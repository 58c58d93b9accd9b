from __future__ import annotations

import pytest

from pmdaemon.model import ExitRecord, ProcessSpec
from pmdaemon.policy import Action, Counters, after_exit, restart_delay

CRASH = ExitRecord(1, None)


def spec(**kw: object) -> ProcessSpec:
    return ProcessSpec(name="a", script="a", **kw)  # type: ignore[arg-type]


def test_unstable_runs_end_errored_after_max_restarts() -> None:
    s = spec(max_restarts=3, min_uptime=1.0)
    counters = Counters()
    actions = []
    for _ in range(4):
        decision = after_exit(s, CRASH, 0.01, counters)
        counters = decision.counters
        actions.append(decision.action)
    assert actions == [Action.RESTART] * 3 + [Action.ERRORED]
    assert "max_restarts (3)" in decision.reason and "exited with code 1" in decision.reason


def test_a_stable_run_resets_the_count() -> None:
    s = spec(max_restarts=1, min_uptime=1.0)
    d = after_exit(s, CRASH, 0.1, Counters())
    assert d.action == Action.RESTART and d.counters.unstable == 1
    d = after_exit(s, CRASH, 5.0, d.counters)
    assert d.action == Action.RESTART and d.counters.unstable == 0


def test_autorestart_off_and_stop_exit_codes_stop() -> None:
    assert after_exit(spec(autorestart=False), CRASH, 9, Counters()).action == Action.STOP
    s = spec(stop_exit_codes=(0, 3))
    assert after_exit(s, ExitRecord(3, None), 9, Counters()).action == Action.STOP
    assert after_exit(s, ExitRecord(None, "SIGKILL"), 9, Counters()).action == Action.RESTART
    assert "killed by SIGKILL" in after_exit(s, ExitRecord(None, "SIGKILL"), 9, Counters()).reason


def test_restart_delay_and_exponential_backoff() -> None:
    assert after_exit(spec(restart_delay=2.0), CRASH, 9, Counters()).delay == 2.0
    s = spec(exp_backoff_restart_delay=0.1, max_restarts=1000)
    counters, delays = Counters(), []
    for _ in range(16):
        d = after_exit(s, CRASH, 0.01, counters)
        counters = d.counters
        delays.append(d.delay)
    assert delays[:3] == pytest.approx([0.1, 0.15, 0.225])
    assert max(delays) == 15.0
    # 30 s of stable running resets the streak.
    assert after_exit(s, CRASH, 31.0, counters).delay == pytest.approx(0.1)
    assert restart_delay(s, 1) == pytest.approx(0.1)
