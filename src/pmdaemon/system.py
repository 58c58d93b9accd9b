"""The machine as SPEC §9 shows it: host, CPU, load, memory, disk, uptime."""

from __future__ import annotations

import os
import platform
import socket
import time
from typing import Any

import psutil

from pmdaemon.units import format_timestamp, format_uptime


class SystemSampler:
    """CPU usage is a rate: ``tick()`` (called by the daemon's sampling loop while someone
    watches) measures it between ticks, and a view shows the last measurement, or, when
    none was made for a while, the rate since the last one."""

    STALE = 2.0  # seconds after which a view measures for itself

    def __init__(self, disk_path: str = "/") -> None:
        self.disk_path = disk_path
        self.cpu_usage = 0.0
        self._last = psutil.cpu_times()
        self._last_at = time.monotonic()

    def tick(self) -> None:
        now = psutil.cpu_times()
        busy = (sum(now) - now.idle - getattr(now, "iowait", 0.0)) - (
            sum(self._last) - self._last.idle - getattr(self._last, "iowait", 0.0)
        )
        total = sum(now) - sum(self._last)
        if total > 0:
            self.cpu_usage = round(max(0.0, min(100.0, 100.0 * busy / total)), 1)
        self._last = now
        self._last_at = time.monotonic()

    def view(self, counts: dict[str, int]) -> dict[str, Any]:
        if time.monotonic() - self._last_at >= self.STALE:
            self.tick()
        mem = psutil.virtual_memory()
        try:
            disk = psutil.disk_usage(self.disk_path)
            disk_view: dict[str, Any] = {
                "total": disk.total,
                "used": disk.used,
                "free": disk.free,
                "usage_percent": disk.percent,
            }
        except OSError:
            disk_view = {"total": None, "used": None, "free": None, "usage_percent": None}
        load = [round(x, 2) for x in os.getloadavg()]
        up = int(time.time() - psutil.boot_time())
        return {  # the names of PMDaemon's api/rest-api.md, with features/web-api.md's `load`
            "hostname": socket.gethostname(),
            "platform": platform.system().lower(),
            "arch": platform.machine(),
            "uptime": format_uptime(up),
            "uptime_seconds": up,
            "timestamp": format_timestamp(time.time()),
            "cpu": {
                "cores": psutil.cpu_count() or 1,
                "usage": self.cpu_usage,
                "load_average": load,
            },
            "load": dict(zip(("one", "five", "fifteen"), load, strict=True)),
            "memory": {
                "total": mem.total,
                "used": mem.total - mem.available,
                "free": mem.available,
                "available": mem.available,
                "usage_percent": mem.percent,
            },
            "disk": disk_view,
            "processes": counts,
        }
