"""Everything the CLI shows a person: tables, process details, messages. Plain ANSI
colours, off for NO_COLOR and when stdout is not a terminal."""

from __future__ import annotations

import os
import sys

from pmdaemon.units import format_bytes, format_duration

# typing is only for the type checker: importing it costs the CLI ~3 ms on every command.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

STATUS_COLOURS = {
    "online": "32",
    "starting": "36",
    "stopping": "33",
    "restarting": "33",
    "stopped": "90",
    "errored": "31",
}
HEALTH_COLOURS = {"healthy": "32", "unhealthy": "31", "unknown": "33"}


def use_colour(stream: TextIO) -> bool:
    return "NO_COLOR" not in os.environ and stream.isatty() and os.environ.get("TERM") != "dumb"


class Painter:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, code: str | None) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled and code else text

    def status(self, status: str) -> str:
        return self(status, STATUS_COLOURS.get(status))

    def bold(self, text: str) -> str:
        return self(text, "1")


def _dash(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def process_table(
    procs: list[dict[str, Any]],
    paint: Painter,
    empty_hint: str = "no processes: start one with `pmdaemon start SCRIPT`",
) -> str:
    headers = [
        "id",
        "name",
        "namespace",
        "status",
        "pid",
        "port",
        "uptime",
        "restarts",
        "cpu",
        "memory",
        "health",
    ]
    rows: list[list[tuple[str, str | None]]] = []
    for p in procs:
        running = p.get("pid") is not None
        health = p.get("health_status")
        rows.append(
            [
                (str(p["id"]), None),
                (p["name"], "1"),
                (p["namespace"], None),
                (p["status"], STATUS_COLOURS.get(p["status"])),
                (_dash(p.get("pid")), None),
                (_dash(p.get("port")), None),
                (p["uptime"] if running else "-", None),
                (str(p["restarts"]), "33" if p["restarts"] else None),
                (f"{p['cpu_usage']:.1f}%" if running else "-", None),
                (format_bytes(p["memory_usage"]) if running else "-", None),
                (_dash(health), HEALTH_COLOURS.get(health or "")),
            ]
        )
    widths = [len(h) for h in headers]
    for row in rows:
        for i, (text, _) in enumerate(row):
            widths[i] = max(widths[i], len(text))
    sep = paint("│", "90")
    line = "─"

    def border(left: str, mid: str, right: str) -> str:
        return paint(left + mid.join(line * (w + 2) for w in widths) + right, "90")

    out = [border("┌", "┬", "┐")]
    out.append(
        sep
        + sep.join(f" {paint(h.ljust(w), '1')} " for h, w in zip(headers, widths, strict=True))
        + sep
    )
    out.append(border("├", "┼", "┤"))
    for row in rows:
        cells = [
            f" {paint(text.ljust(w), code)} " for (text, code), w in zip(row, widths, strict=True)
        ]
        out.append(sep + sep.join(cells) + sep)
    out.append(border("└", "┴", "┘"))
    if not procs:
        out.append(empty_hint)
    return "\n".join(out)


DETAIL_FIELDS = [
    ("id", "id"),
    ("name", "name"),
    ("namespace", "namespace"),
    ("status", "status"),
    ("desired state", "desired_state"),
    ("pid", "pid"),
    ("uptime", "uptime"),
    ("restarts", "restarts"),
    ("cpu", "cpu_usage"),
    ("memory", "memory_usage"),
    ("exit code", "exit_code"),
    ("exit signal", "exit_signal"),
    ("last restart reason", "last_restart_reason"),
    ("last error", "last_error"),
    ("created at", "created_at"),
    ("started at", "started_at"),
]


DURATION_FIELDS = (
    "min_uptime",
    "restart_delay",
    "exp_backoff_restart_delay",
    "kill_timeout",
    "wait_timeout",
    "watch_delay",
    "timeout",
    "interval",
)
SIZE_FIELDS = ("max_memory_restart", "max_log_size")


def _config_value(key: str, value: Any) -> str:
    if value is None or value == [] or value == {}:
        return "-"
    if key in DURATION_FIELDS and isinstance(value, int | float):
        return format_duration(float(value))
    if key in SIZE_FIELDS and isinstance(value, int):
        return format_bytes(value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {_config_value(k, v)}" for k, v in value.items() if v is not None)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def process_detail(p: dict[str, Any], paint: Painter) -> str:
    out = [paint.bold(f"Process {p['name']} (id {p['id']})"), ""]
    width = 28
    for label, key in DETAIL_FIELDS:
        value = p.get(key)
        if key == "status":
            text = paint.status(str(value))
        elif key == "memory_usage":
            text = format_bytes(int(value or 0)) if p.get("pid") else "-"
        elif key == "cpu_usage":
            text = f"{value:.1f}%" if p.get("pid") else "-"
        elif key == "uptime":
            text = str(value) if p.get("pid") else "-"
        else:
            text = _dash(value)
        out.append(f"  {label.ljust(width)}{text}")
    out += ["", paint.bold("Configuration"), ""]
    for key, value in p.get("config", {}).items():
        shown = (
            "(names only) " + ", ".join(sorted(value))
            if key == "env" and value
            else _config_value(key, value)
        )
        out.append(f"  {key.ljust(width)}{shown}")
    health = p.get("health_check")
    if health:
        out += ["", paint.bold("Health check"), ""]
        for label, key in (
            ("check", "check_type"),
            ("url", "url"),
            ("script", "script"),
            ("status", "status"),
            ("last check", "last_check"),
            ("response time", "response_time"),
            ("last error", "last_error"),
            ("consecutive failures", "consecutive_failures"),
        ):
            value = health.get(key)
            if key in ("url", "script") and value is None:
                continue
            if key == "status":
                text = paint(str(value), HEALTH_COLOURS.get(str(value)))
            elif key == "response_time" and value is not None:
                text = f"{value} ms"
            else:
                text = _dash(value)
            out.append(f"  {label.ljust(width)}{text}")
        for line in health.get("output") or []:
            out.append(f"  {'output'.ljust(width)}{line}")
    logs = p.get("logs", {})
    out += [
        "",
        paint.bold("Logs"),
        "",
        f"  {'out'.ljust(width)}{logs.get('out_file')}",
        f"  {'error'.ljust(width)}{logs.get('error_file')}",
    ]
    if logs.get("log_file"):
        out.append(f"  {'combined'.ljust(width)}{logs['log_file']}")
    if p.get("pid_file"):
        out.append(f"  {'pid file'.ljust(width)}{p['pid_file']}")
    config = p.get("config", {})
    if config.get("cron_restart") or config.get("watch"):
        out += ["", paint.bold("Triggers"), ""]
    if config.get("cron_restart"):
        line = f"{config['cron_restart']}, next at {_dash(p.get('next_cron_restart'))}"
        out.append(f"  {'cron'.ljust(width)}{line}")
    if config.get("watch"):
        out.append(f"  {'watching'.ljust(width)}{' '.join(config['watch'])}")
        if p.get("watch_problem"):
            out.append(f"  {'watch problem'.ljust(width)}{p['watch_problem']}")
    history = p.get("restart_history") or []
    out += ["", paint.bold("Recent restarts"), ""]
    if not history:
        out.append("  none")
    for item in history[-10:]:
        ended = f" (pid {item['pid']})" if item.get("pid") else ""
        out.append(f"  {item['at']}  {item['reason']}{ended}")
    return "\n".join(out)


def warn(message: str) -> None:
    paint = Painter(use_colour(sys.stderr))
    print(f"{paint('warning:', '33;1')} {message}", file=sys.stderr)


def error(message: str) -> None:
    paint = Painter(use_colour(sys.stderr))
    print(f"{paint('error:', '31;1')} {message}", file=sys.stderr)
