#!/usr/bin/env python3
"""`monit` CPU: CPU time of the terminal monitor's own process over 30 s with 20 idle
apps; pmdaemon's `pmdaemon monit -i 1` and PM2's `pm2 monit`, one after the other.

Each monitor runs in a detached session of a private tmux server (its own socket, no
configuration file, a 160 by 50 pane) and is found as the pane's process. The daemon's CPU
over the same window is measured too: a monitor makes its daemon work on every refresh.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import harness
import psutil
from common import CpuUse, ensure_tmux, kill_leftovers, measure_cpu, wait_until
from manager import Manager

TARGET_PERCENT = 5.0  # of one core
INTERVAL = 1.0  # pmdaemon monit -i
TMUX_TIMEOUT = 10.0
READY_TIMEOUT = 30.0
WIDTH, HEIGHT = 160, 50


class Tmux:
    """A private tmux server (socket `-L NAME`, no configuration file) running one command
    in a detached session; `kill()` ends the server, what runs in it, and its socket."""

    def __init__(self, tmux: str, name: str, env: dict[str, str]) -> None:
        self.base = [tmux, "-f", "/dev/null", "-L", name]
        # A tmux started from inside another one would refuse to nest without this.
        self.env = {k: v for k, v in env.items() if k not in ("TMUX", "TMUX_PANE")}
        self.server: psutil.Process | None = None
        self.pane: psutil.Process | None = None
        self.socket: Path | None = None

    def call(self, *args: str) -> str:
        proc = subprocess.run(
            [*self.base, *args],
            env=self.env,
            capture_output=True,
            timeout=TMUX_TIMEOUT,
            check=False,
        )
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace").strip()
            raise RuntimeError(f"tmux {' '.join(args)} exited {proc.returncode}: {err}")
        return proc.stdout.decode(errors="replace")

    def start(self, argv: Sequence[str]) -> psutil.Process:
        """Run `argv` (no shell) in a new detached session; returns the pane's process.

        remain-on-exit keeps the pane after the command ends, so its last words can still
        be read with `screen()`."""
        self.call(
            "start-server",
            ";",
            "set-option",
            "-g",
            "remain-on-exit",
            "on",
            ";",
            "new-session",
            "-d",
            "-x",
            str(WIDTH),
            "-y",
            str(HEIGHT),
            "--",
            *argv,
        )
        server_pid, socket = self.call("display-message", "-p", "#{pid} #{socket_path}").split()
        self.server = psutil.Process(int(server_pid))
        self.socket = Path(socket)
        self.pane = psutil.Process(int(self.call("list-panes", "-F", "#{pane_pid}").split()[0]))
        return self.pane

    def screen(self) -> str:
        """The pane's text, with its history."""
        return self.call("capture-pane", "-p", "-S", "-")

    def pane_dead(self) -> bool:
        return self.call("list-panes", "-F", "#{pane_dead}").split()[0] == "1"

    def kill(self) -> None:
        procs = [p for p in (self.server, self.pane) if p is not None]
        if self.pane is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                procs += self.pane.children(recursive=True)
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.call("kill-server")
        killed = kill_leftovers(procs)
        if killed:
            print(f"warning: tmux left processes behind, killed: {killed}")
        if self.socket is not None:  # kill-server leaves the socket file behind
            self.socket.unlink(missing_ok=True)


@dataclass(frozen=True)
class Measured:
    command: str
    monit: CpuUse
    daemon: CpuUse
    terminal: CpuUse  # the tmux server, which draws what the monitor writes
    descendants: int  # processes the monitor runs itself


def monit_argv(m: Manager) -> list[str]:
    if m.key == "pmd":
        return [*m.command(), "monit", "-i", f"{INTERVAL:g}"]
    return [*m.command(), "monit"]


def find_monitor(pane: psutil.Process) -> psutil.Process:
    """The pane's process, or its descendant, whose command line says monit."""

    def look() -> psutil.Process | None:
        with contextlib.suppress(psutil.NoSuchProcess):
            for p in [pane, *pane.children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    if "monit" in p.cmdline():
                        return p
        return None

    return wait_until(look, READY_TIMEOUT, "the monit process")


def measure(m: Manager, tmux: str, processes: int, settle: float, duration: float) -> Measured:
    names = harness.start_idle([m], "monit", processes, timeout=120)
    pid = m.god_pid()
    if pid is None:
        raise RuntimeError(f"{m.label} daemon PID unknown")
    daemon = psutil.Process(pid)
    argv = monit_argv(m)
    session = Tmux(tmux, f"pmdbench-{os.getpid()}-{m.key}", m.env)
    try:
        pane = session.start(argv)
        monitor = find_monitor(pane)

        def showing() -> bool:
            if session.pane_dead():
                raise RuntimeError(f"{m.label} monit ended:\n{session.screen()[-2000:]}")
            text = session.screen()
            return names[0] in text and names[-1] in text

        try:
            wait_until(showing, READY_TIMEOUT, f"{m.label} monit to show the apps", 0.25)
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}; the screen:\n{session.screen()[-3000:]}") from None
        time.sleep(settle)
        assert session.server is not None
        use = measure_cpu(
            {"monit": monitor, "daemon": daemon, "terminal": session.server}, duration
        )
        if not showing():  # still drawing the table at the end
            raise RuntimeError(f"{m.label} monit stopped showing the apps")
        descendants = 0
        with contextlib.suppress(psutil.NoSuchProcess):
            descendants = len(monitor.children(recursive=True))
    finally:
        session.kill()
    command = " ".join(["pmdaemon" if m.key == "pmd" else "pm2", *argv[len(m.command()) :]])
    return Measured(command, use["monit"], use["daemon"], use["terminal"], descendants)


def run() -> None:
    p = harness.parser(__doc__ or "")
    p.add_argument("--processes", type=int, default=20)
    p.add_argument(
        "--settle", type=float, default=3.0, help="seconds after the apps show, before (3)"
    )
    p.add_argument("--duration", type=float, default=30.0, help="seconds measured (30)")
    args = p.parse_args()
    if args.duration <= 0 or args.processes < 1:
        p.error("need --duration > 0 and --processes ≥ 1")

    tmux = ensure_tmux()  # before any manager starts
    with harness.open_managers(harness.manager_keys(args.managers)) as managers:
        results: dict[str, Measured] = {}
        for m in managers:  # one after the other; each is killed before the next starts
            results[m.key] = r = measure(m, tmux, args.processes, args.settle, args.duration)
            m.kill()
            print(
                f"{m.label:<9} monit {r.monit.own:5.2f} % of one core over {args.duration:g} s"
                f" (halves {' + '.join(f'{x:.2f}' for x in r.monit.own_parts)});"
                f" daemon {r.daemon.own:.2f} %; tmux server {r.terminal.own:.2f} %;"
                f" monit's own children: {r.descendants}",
                flush=True,
            )

        what = f"{args.processes} idle processes, % of one core"
        monit_row = harness.Row(
            f"`monit` process CPU, {what}",
            "%",
            f"≤ {TARGET_PERCENT:g} %",
            {k: r.monit.own_stats() for k, r in results.items()},
        )
        pmd = monit_row.results.get("pmd")
        monit_row.met = pmd.median <= TARGET_PERCENT if pmd else None
        rows = [
            monit_row,
            harness.Row(
                f"daemon CPU while `monit` runs, {what}",
                "%",
                "next to PM2",
                {k: r.daemon.own_stats() for k, r in results.items()},
            ),
        ]
        harness.report(
            rows,
            managers,
            {
                "processes": args.processes,
                "settle_s": args.settle,
                "duration_s": args.duration,
                "interval_s": INTERVAL,
                "commands": {k: r.command for k, r in results.items()},
                "terminal": f"tmux {tmux_version(tmux)}, {WIDTH}x{HEIGHT}",
                "monit_percent": {k: r.monit.own for k, r in results.items()},
                "daemon_percent": {k: r.daemon.own for k, r in results.items()},
                "tmux_server_percent": {k: r.terminal.own for k, r in results.items()},
                "monit_children": {k: r.descendants for k, r in results.items()},
                "order": [m.key for m in managers],
            },
        )


def tmux_version(tmux: str) -> str:
    proc = subprocess.run([tmux, "-V"], capture_output=True, timeout=10, check=False)
    words = proc.stdout.decode(errors="replace").split()
    return words[-1] if words else "unknown"


if __name__ == "__main__":
    harness.main(run)
