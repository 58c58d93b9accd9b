"""`pmdaemon monit`: a full-screen live view (system header, process table, the selected
process's recent log lines), refreshed every --interval seconds. Arrow keys (or j/k) select,
q quits; the terminal is restored on every way out."""

from __future__ import annotations

import contextlib
import os
import select
import sys
import termios
import time
import tty
from collections.abc import Iterator
from typing import Any

from rich.console import Console, Group
from rich.layout import Layout
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from pmdaemon.cli.render import HEALTH_COLOURS, STATUS_COLOURS
from pmdaemon.client import Client
from pmdaemon.units import format_bytes

RICH_COLOURS = {"32": "green", "36": "cyan", "33": "yellow", "90": "bright_black", "31": "red"}
LOG_LINES = 12


def _colour(table: dict[str, str], key: str | None) -> str:
    return RICH_COLOURS.get(table.get(key or "", ""), "")


class Monitor:
    def __init__(self, client: Client, interval: float) -> None:
        self.client = client
        self.interval = interval
        self.selected = 0
        self.processes: list[dict[str, Any]] = []
        self.system: dict[str, Any] = {}
        self.logs: list[dict[str, Any]] = []
        self.error = ""

    def fetch(self) -> None:
        try:
            self.processes = self.client.call("GET", "/api/processes")
            self.system = self.client.call("GET", "/api/system")
            self.selected = min(self.selected, max(len(self.processes) - 1, 0))
            if self.processes:
                ident = self.processes[self.selected]["id"]
                data = self.client.call("GET", f"/api/logs/{ident}?lines={LOG_LINES}")
                self.logs = data["logs"][-LOG_LINES:]
            else:
                self.logs = []
            self.error = ""
        except Exception as exc:  # the daemon went away: keep the last view, say why
            self.error = getattr(exc, "message", str(exc))

    def header(self) -> Panel:
        s = self.system
        if not s:
            return Panel(Text(self.error or "waiting for the daemon…"), title="pmdaemon monit")
        mem, disk, counts = s["memory"], s["disk"], s["processes"]
        line1 = Text.assemble(
            (f"{s['hostname']}", "bold"),
            f"  {s['platform']}/{s['arch']}  up "
            f"{s['uptime']}  load {' '.join(map(str, s['cpu']['load_average']))}",
        )
        line2 = Text(
            f"CPU {s['cpu']['usage']:.1f}% of {s['cpu']['cores']} cores   memory "
            f"{format_bytes(mem['used'])} / {format_bytes(mem['total'])} "
            f"({mem['usage_percent']:.0f}%)"
            + (
                f"   disk {disk['usage_percent']:.0f}% used"
                if disk.get("usage_percent") is not None
                else ""
            )
        )
        line3 = Text(
            f"{counts.get('online', 0)} online, {counts.get('stopped', 0)} stopped, "
            f"{counts.get('errored', 0)} errored, {counts.get('total', 0)} in all"
            + (f"   ⚠ {self.error}" if self.error else "")
        )
        return Panel(
            Group(line1, line2, line3), title="pmdaemon monit", subtitle="↑/↓ select · q quit"
        )

    def table(self) -> Table:
        table = Table(expand=True, box=None, header_style="bold", pad_edge=False)
        for column, justify in (
            ("id", "right"),
            ("name", "left"),
            ("status", "left"),
            ("pid", "right"),
            ("port", "right"),
            ("cpu", "right"),
            ("memory", "right"),
            ("uptime", "right"),
            ("restarts", "right"),
            ("health", "left"),
        ):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for index, p in enumerate(self.processes):
            running = p["pid"] is not None
            table.add_row(
                str(p["id"]),
                p["name"],
                Text(p["status"], style=_colour(STATUS_COLOURS, p["status"])),
                str(p["pid"] or "-"),
                str(p["port"] or "-"),
                f"{p['cpu_usage']:.1f}%" if running else "-",
                format_bytes(p["memory_usage"]) if running else "-",
                p["uptime"] if running else "-",
                str(p["restarts"]),
                Text(p["health_status"] or "-", style=_colour(HEALTH_COLOURS, p["health_status"])),
                style="reverse" if index == self.selected else None,
            )
        if not self.processes:
            table.add_row("", "no processes")
        return table

    def log_panel(self) -> Panel:
        name = self.processes[self.selected]["name"] if self.processes else "-"
        lines = Text()
        for entry in self.logs:
            style = "red" if entry["type"] == "error" else ""
            lines.append(entry["message"][:500] + "\n", style=style)
        return Panel(lines, title=f"logs: {name}")

    def render(self) -> Layout:
        layout = Layout()
        layout.split_column(
            Layout(self.header(), name="header", size=5),
            Layout(Panel(self.table(), title="processes"), name="table"),
            Layout(self.log_panel(), name="logs", size=LOG_LINES + 2),
        )
        return layout

    def key(self, data: bytes) -> bool:
        """Apply keys; False means quit."""
        for key in _keys(data):
            if key in (b"q", b"Q", b"\x03"):
                return False
            if key in (b"\x1b[A", b"k"):
                self.selected = max(self.selected - 1, 0)
            elif key in (b"\x1b[B", b"j"):
                self.selected = min(self.selected + 1, max(len(self.processes) - 1, 0))
        return True


def _keys(data: bytes) -> Iterator[bytes]:
    i = 0
    while i < len(data):
        if data[i : i + 2] == b"\x1b[" and i + 2 < len(data):
            yield data[i : i + 3]
            i += 3
        else:
            yield data[i : i + 1]
            i += 1


@contextlib.contextmanager
def raw_keys() -> Iterator[int]:
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield fd
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def run(client: Client, interval: float) -> int:
    monitor = Monitor(client, interval)
    console = Console()
    monitor.fetch()
    with (
        raw_keys() as fd,
        Live(monitor.render(), console=console, screen=True, auto_refresh=False) as live,
    ):
        next_fetch = time.monotonic() + interval
        while True:
            timeout = max(0.0, next_fetch - time.monotonic())
            ready, _, _ = select.select([fd], [], [], timeout)
            if ready:
                data = os.read(fd, 64)
                if not data or not monitor.key(data):
                    return 0
                if monitor.processes:
                    monitor.fetch()  # show the newly selected process's logs at once
            else:
                monitor.fetch()
                next_fetch = time.monotonic() + interval
            live.update(monitor.render(), refresh=True)
