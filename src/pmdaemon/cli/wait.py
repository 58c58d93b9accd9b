"""--wait-ready: block until every started instance is ready (healthy, or up for
min_uptime without a health check), with live progress on a terminal; on timeout, say why
with the last health error and the last log lines of each instance not ready."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from pmdaemon.cli import render
from pmdaemon.units import parse_duration

if TYPE_CHECKING:
    from pmdaemon.cli.main import Context

POLL = 0.2
LOG_TAIL = 10


def timeout_of(ctx: Context, details: list[dict[str, Any]]) -> float:
    raw = getattr(ctx.args, "wait_timeout", None)
    if raw is not None:
        return parse_duration(raw, "wait_timeout")
    return max(float(d["config"].get("wait_timeout", 30.0)) for d in details)


def details_of(ctx: Context, idents: list[str]) -> list[dict[str, Any]]:
    from pmdaemon.cli.main import quote

    client = ctx.client()
    found: list[dict[str, Any]] = []
    for ident in idents:
        data = client.call("GET", f"/api/processes/{quote(ident)}")
        found += data if isinstance(data, list) else [data]
    return found


def wait_ready(ctx: Context, idents: list[str]) -> int:
    """0 when all are ready; 1 (after saying why) on timeout or when one fails."""
    details = details_of(ctx, idents)
    if not details:
        return 0
    timeout = timeout_of(ctx, details)
    ids = [str(d["id"]) for d in details]
    tty = sys.stderr.isatty() and not getattr(ctx.args, "json", False)
    began = time.monotonic()
    while True:
        details = details_of(ctx, ids)
        waiting = [d for d in details if not d["ready"]]
        failed = [d for d in waiting if d["status"] in ("errored", "stopped")]
        elapsed = time.monotonic() - began
        if tty:
            names = ", ".join(d["name"] for d in waiting[:4]) + ("…" if len(waiting) > 4 else "")
            line = f"ready {len(details) - len(waiting)}/{len(details)} after {elapsed:.1f}s" + (
                f" (waiting for {names})" if waiting else ""
            )
            print(f"\r\x1b[2K{line}", end="", file=sys.stderr, flush=True)
        if not waiting:
            if tty:
                print(file=sys.stderr)
            return 0
        if failed or elapsed >= timeout:
            if tty:
                print(file=sys.stderr)
            explain(ctx, failed or waiting, timeout, bool(failed))
            return 1
        time.sleep(POLL)


def explain(ctx: Context, waiting: list[dict[str, Any]], timeout: float, failed: bool) -> None:
    client = ctx.client()
    for d in waiting:
        health = d.get("health_check") or {}
        if failed:
            why = f"{d['name']} is {d['status']}" + (
                f": {d['last_error']}" if d.get("last_error") else ""
            )
        else:
            why = f"{d['name']} not ready within {timeout:g}s"
        if health.get("last_error"):
            why += f" (last health check: {health['last_error']})"
        render.error(why)
        logs = client.call("GET", f"/api/logs/{d['id']}?lines={LOG_TAIL}")["logs"]
        for entry in logs[-LOG_TAIL:]:
            stream = "err" if entry["type"] == "error" else "out"
            print(f"  {d['name']} {stream} | {entry['message']}", file=sys.stderr)


# -- the first run of a start ----------------------------------------------------------------

FIRST_RUN_POLL = 0.05


def early_exits(
    ctx: Context, started: list[dict[str, Any]], details: list[dict[str, Any]]
) -> list[tuple[str, str, bool]]:
    """Watch the processes a start has just started until each has been up for its
    min_uptime; for each whose first run ended by itself sooner, its name, what happened,
    and whether it ended cleanly (exit code 0). Observes the daemon's list until the last
    deadline, never longer."""
    config_of = {d["id"]: d for d in details}
    began = time.monotonic()
    watched: dict[int, tuple[dict[str, Any], float]] = {}
    for first in started:
        d = config_of.get(first["id"])
        if d is None or first.get("pid") is None:
            continue  # not running: nothing to watch (a spawn error is already reported)
        left = float(d["config"]["min_uptime"]) - float(d.get("uptime_seconds") or 0)
        if left > 0:
            watched[first["id"]] = (first, began + left)
    client = ctx.client()
    ended: list[tuple[str, str, bool]] = []
    while watched:
        now = time.monotonic()
        views = {v["id"]: v for v in client.call("GET", "/api/processes")}
        for ident, (first, deadline) in list(watched.items()):
            view = views.get(ident)
            same_run = (
                view is not None
                and view["pid"] == first["pid"]
                and view["status"] == "online"
                and view["restarts"] == first["restarts"]
            )
            if same_run and now < deadline:
                continue
            del watched[ident]
            if view is not None and not same_run:
                why = first_run_ended(client, first)
                if why is not None:
                    ended.append((first["name"], *why))
        if watched:
            nearest = min(deadline for _, deadline in watched.values())
            time.sleep(max(0.0, min(FIRST_RUN_POLL, nearest - time.monotonic())))
    return ended


def first_run_ended(client: Any, first: dict[str, Any]) -> tuple[str, bool] | None:
    """How the first run of ``first`` ended, and whether cleanly (exit code 0), when it
    ended by itself; None when it did not (a stop, a restart, reload or memory-limit
    restart) or was a one-shot job that ended as it should."""
    from pmdaemon.units import format_duration

    d = client.call("GET", f"/api/processes/{first['id']}")
    config, name = d["config"], d["name"]
    if d["pid"] is None:  # restarting after a delay, stopped or errored: its exit is kept
        code, sig = d.get("exit_code"), d.get("exit_signal")
        if d["status"] in ("stopped", "stopping"):
            finished = (code == 0 and sig is None) or code in config.get("stop_exit_codes", [])
            if config.get("autorestart", True) or finished:
                return None  # stopped by someone, or a job that ended as it should
        if sig is not None:
            what = f"killed by {sig}"
        elif code is not None:
            what = f"exit code {code}"
        else:
            what = d.get("last_error") or "exit status unknown"
    else:  # already running again: the restart that replaced it says why
        history = reversed(d.get("restart_history", []))
        reason = next((r["reason"] for r in history if r.get("pid") == first["pid"]), None)
        if reason is None or not reason.startswith(("exited", "killed by")):
            return None  # restarted on purpose (restart, reload, memory limit, health check)
        what = reason.replace("exited with code ", "exit code ")
    within = format_duration(float(config["min_uptime"]))
    message = f"{name} exited within {within} of starting ({what}): see pmdaemon logs {name}"
    return message, what == "exit code 0"
