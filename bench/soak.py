#!/usr/bin/env python3
"""Soak: pmdaemon alone for --duration seconds (600) with 200 idle processes, one app in a
crash loop, one app logging steadily (rotated at 1M), and the web API under a steady,
bounded load (list, detail, logs, /metrics; one WebSocket client reading the stream).
Every 10 s the RSS and open descriptors of the daemon and of the log keeper are sampled.
The figures: RSS growth from the end of a one-minute warm-up to the end (target < 10 %),
and descriptor counts over the same span (target: no growth).

Writes its table between the soak markers in docs/benchmarks.md (--no-write to only
print it)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import websockets
from common import IDLE_SCRIPT, MIB, REPO_DIR, temp_dir, wait_until

KEY = "soak-key-0123456789abcdef"
START, END = "<!-- soak:start -->", "<!-- soak:end -->"
CRASHER = "import time; time.sleep(0.3); raise SystemExit(3)"
TICKER = REPO_DIR / "tests" / "children" / "ticker.py"


def pmdaemon() -> str:
    return str(Path(sys.executable).parent / "pmdaemon")


def run(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [pmdaemon(), *args], env=env, capture_output=True, text=True, timeout=300, check=True
    )
    return result.stdout


def sample(pid: int) -> tuple[int, int]:
    proc = psutil.Process(pid)
    return proc.memory_info().rss, proc.num_fds()


class Load(threading.Thread):
    """A bounded request loop (at most `rate` requests a second, until `stop`)."""

    def __init__(self, url: str, ids: list[int], rate: float, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url, self.ids, self.rate, self.stop = url, ids, rate, stop
        self.requests = 0
        self.failures = 0

    def run(self) -> None:
        paths = ["/api/processes", "/metrics", "/api/system"]
        with httpx.Client(base_url=self.url, headers={"X-API-Key": KEY}, timeout=30) as client:
            while not self.stop.is_set():
                ident = self.ids[self.requests % len(self.ids)]
                for path in [*paths, f"/api/processes/{ident}", f"/api/logs/{ident}?lines=50"]:
                    try:
                        ok = client.get(path).status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    self.requests += 1
                    self.failures += not ok
                    self.stop.wait(1 / self.rate)


async def read_stream(url: str, stop: threading.Event, counter: list[int]) -> None:
    async with websockets.connect(url, max_queue=None) as ws:
        await ws.send(json.dumps({"type": "auth", "api_key": KEY}))
        while not stop.is_set():
            try:
                await asyncio.wait_for(ws.recv(), 1.0)
                counter[0] += 1
            except TimeoutError:
                continue


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--processes", type=int, default=200)
    parser.add_argument("--rate", type=float, default=25.0, help="API requests per second")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--output", type=Path, default=REPO_DIR / "docs" / "benchmarks.md")
    args = parser.parse_args()

    home = temp_dir("pmd-soak-") / "home"
    env = {**os.environ, "PMDAEMON_HOME": str(home), "NO_COLOR": "1"}
    eco = home.parent / "soak.json"
    apps = [
        {"name": f"idle{i}", "script": str(IDLE_SCRIPT), "interpreter": sys.executable,
         "args": ["soak"]}
        for i in range(args.processes)
    ]  # fmt: skip
    apps.append(
        {"name": "crasher", "script": sys.executable, "interpreter": "none",
         "args": ["-c", CRASHER], "max_restarts": 1_000_000, "restart_delay": "200ms"}
    )  # fmt: skip
    apps.append(
        {"name": "logger", "script": str(TICKER), "interpreter": sys.executable,
         "args": ["0.01"], "max_log_size": "1M", "max_log_files": 3}
    )  # fmt: skip
    home.parent.mkdir(parents=True, exist_ok=True)
    eco.write_text(json.dumps({"apps": apps}))
    web: subprocess.Popen[str] | None = None
    stop = threading.Event()
    try:
        run(env, "start", str(eco))
        web = subprocess.Popen(
            [pmdaemon(), "web", "-p", "0", "--rate-limit", "off", "--api-key", KEY],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert web.stdout is not None
        line = web.stdout.readline()
        url = line.split("web API on ")[1].split()[0]
        daemon = int((home / "daemon.pid").read_text())
        keeper = int((home / "logkeeper.pid").read_text())
        ids = [p["id"] for p in json.loads(run(env, "list", "--json"))]
        load = Load(url, ids, args.rate, stop)
        load.start()
        messages = [0]
        ws_url = url.replace("http", "ws", 1) + "/ws"
        stream = threading.Thread(
            target=lambda: asyncio.run(read_stream(ws_url, stop, messages)), daemon=True
        )
        stream.start()
        samples: list[tuple[float, int, int, int, int]] = []
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < args.duration:
            d_rss, d_fds = sample(daemon)
            k_rss, k_fds = sample(keeper)
            samples.append((elapsed, d_rss, d_fds, k_rss, k_fds))
            print(f"{elapsed:6.0f}s daemon {d_rss / MIB:6.1f} MiB {d_fds} fds; "
                  f"keeper {k_rss / MIB:5.1f} MiB {k_fds} fds", flush=True)  # fmt: skip
            stop.wait(10)
        stop.set()
        load.join(timeout=30)
        stream.join(timeout=30)
        crasher = json.loads(run(env, "info", "crasher", "--json"))
    finally:
        stop.set()
        if web is not None:
            web.send_signal(signal.SIGTERM)
            web.wait(timeout=60)
        subprocess.run([pmdaemon(), "kill"], env=env, capture_output=True, timeout=300)
        wait_until(lambda: not (home / "daemon.pid").exists(), timeout=60, what="daemon gone")

    warm = [s for s in samples if s[0] >= min(60.0, args.duration / 5)]
    first, last = warm[0], warm[-1]
    assert len(warm) >= 3, "too short to compare: use --duration 60 or more"
    growth = (last[1] - first[1]) / first[1] * 100
    keeper_growth = (last[3] - first[3]) / first[3] * 100
    # Descriptors come and go with the crash loop's runs: compare the highest count of the
    # first and of the last three samples.
    early, late = warm[:3], warm[-3:]
    fds = (max(s[2] for s in early), max(s[2] for s in late))
    kfds = (max(s[4] for s in early), max(s[4] for s in late))
    span = f"{args.duration / 60:g} minutes" if args.duration >= 60 else f"{args.duration:g} s"
    table = "\n".join(
        [
            START,
            f"## Soak: {span}, {args.processes} processes, a crash loop, API load",
            "",
            f"`bench/soak.py` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}): "
            f"{args.processes} idle apps, `crasher` restarted {crasher['restarts']} times, "
            f"`logger` writing 100 lines/s (1M rotation), {load.requests} API requests "
            f"({load.failures} failed) at up to {args.rate:g}/s, one WebSocket client "
            f"({messages[0]} messages). Warm-up: the first minute.",
            "",
            "| figure | after warm-up | at the end | change | target | met |",
            "|---|---|---|---|---|---|",
            f"| daemon RSS | {first[1] / MIB:.1f} MiB | {last[1] / MIB:.1f} MiB | {growth:+.1f} % "
            f"| < 10 % | {'yes' if growth < 10 else 'no'} |",
            f"| log keeper RSS | {first[3] / MIB:.1f} MiB | {last[3] / MIB:.1f} MiB | "
            f"{keeper_growth:+.1f} % | < 10 % | {'yes' if keeper_growth < 10 else 'no'} |",
            f"| daemon open fds (highest of 3 samples) | {fds[0]} | {fds[1]} | "
            f"{fds[1] - fds[0]:+d} | no growth | {'yes' if fds[1] <= fds[0] else 'no'} |",
            f"| log keeper open fds (highest of 3 samples) | {kfds[0]} | {kfds[1]} | "
            f"{kfds[1] - kfds[0]:+d} | no growth | {'yes' if kfds[1] <= kfds[0] else 'no'} |",
            END,
        ]
    )
    print(table)
    if not args.no_write:
        text = args.output.read_text() if args.output.exists() else ""
        if START in text and END in text:
            text = text[: text.index(START)] + table + text[text.index(END) + len(END) :]
        else:
            text = text.rstrip("\n") + "\n\n" + table + "\n"
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
