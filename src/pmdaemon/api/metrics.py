"""`GET /metrics`: the Prometheus text exposition format (version 0.0.4), written directly
(the format is small; prometheus_client would cost the daemon memory for nothing). The
tests parse it with prometheus_client's own parser."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any

import psutil

from pmdaemon import __version__
from pmdaemon.model import ProcessState
from pmdaemon.supervisor import Supervisor
from pmdaemon.system import SystemSampler

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
HEALTH_VALUES = {"healthy": 1, "unhealthy": 0}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, Any]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{key}="{_escape(str(value))}"' for key, value in labels.items())
    return "{" + inner + "}"


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


class Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self, name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, Any], float]]
    ) -> None:
        # Text format 0.0.4 names a counter's family as its samples (with _total), as
        # Prometheus' own parser and prometheus_client's exposition do.
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render(sup: Supervisor, system: SystemSampler) -> str:
    sup.refresh()
    procs = sup.sorted()
    labelled = [
        (
            {
                "name": p.spec.name,
                "id": p.id,
                "namespace": p.spec.namespace,
                "instance": p.instance,
            },
            p,
        )
        for p in procs
    ]
    out = Exposition()
    out.family(
        "pmdaemon_process_up",
        "gauge",
        "1 when the process is online",
        ((labels, int(p.state == ProcessState.ONLINE)) for labels, p in labelled),
    )
    out.family(
        "pmdaemon_process_status",
        "gauge",
        "1 for the process's current status",
        (({**labels, "status": p.state.value}, 1) for labels, p in labelled),
    )
    out.family(
        "pmdaemon_process_cpu_percent",
        "gauge",
        "CPU use of the process tree, percent of one core",
        ((labels, round(p.cpu_usage, 2)) for labels, p in labelled),
    )
    out.family(
        "pmdaemon_process_memory_bytes",
        "gauge",
        "resident memory of the process tree",
        ((labels, p.memory_usage) for labels, p in labelled),
    )
    out.family(
        "pmdaemon_process_restarts_total",
        "counter",
        "restarts since the process was created",
        ((labels, p.restarts) for labels, p in labelled),
    )
    out.family(
        "pmdaemon_process_uptime_seconds",
        "gauge",
        "seconds since the current run started (0 when not running)",
        ((labels, round(p.uptime_seconds(), 3)) for labels, p in labelled),
    )
    out.family(
        "pmdaemon_process_healthy",
        "gauge",
        "1 healthy, 0 unhealthy; absent without a health check or before its first result",
        (
            (labels, HEALTH_VALUES[p.health.status])
            for labels, p in labelled
            if p.health is not None and p.pid is not None and p.health.status in HEALTH_VALUES
        ),
    )
    counts = sup.counts()
    me = psutil.Process(os.getpid())
    out.family(
        "pmdaemon_processes",
        "gauge",
        "managed processes by status",
        (({"status": state.value}, counts[state.value]) for state in ProcessState),
    )
    out.family(
        "pmdaemon_daemon_info", "gauge", "the daemon's version", [({"version": __version__}, 1)]
    )
    out.family(
        "pmdaemon_daemon_uptime_seconds",
        "gauge",
        "seconds since the daemon started",
        [({}, round(time.time() - me.create_time(), 3))],
    )
    out.family(
        "pmdaemon_daemon_memory_bytes",
        "gauge",
        "resident memory of the daemon process",
        [({}, me.memory_info().rss)],
    )
    view = system.view(counts)
    out.family(
        "pmdaemon_system_cpu_percent",
        "gauge",
        "CPU use of the machine, percent of all cores",
        [({}, float(view["cpu"]["usage"]))],
    )
    out.family(
        "pmdaemon_system_memory_bytes",
        "gauge",
        "memory of the machine",
        [({"kind": kind}, view["memory"][kind]) for kind in ("total", "used", "free")],
    )
    out.family(
        "pmdaemon_system_load_average",
        "gauge",
        "load average",
        [
            ({"period": period}, value)
            for period, value in zip(("1m", "5m", "15m"), view["cpu"]["load_average"], strict=True)
        ],
    )
    return out.text()
