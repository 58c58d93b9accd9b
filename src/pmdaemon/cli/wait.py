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
