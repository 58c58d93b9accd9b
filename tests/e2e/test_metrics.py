"""`GET /metrics` (issue 11): Prometheus text that prometheus_client's parser reads, a
restart counter that rises after a crash, and the seed's 401 without the key."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from helpers import Pmd, Web, child, wait_until

PY = sys.executable
KEY = "metrics-key-0123456789"
UNAUTHORIZED = '{"error": "Unauthorized", "message": "Invalid or missing API key"}'


def scrape(w: Web) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    response = httpx.get(f"{w.url}/metrics", headers={"X-API-Key": KEY})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            key = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


def test_metrics_parse_and_follow_the_processes(pmd: Pmd, web: Callable[..., Web]) -> None:
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "app", "--namespace", "team")
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "web", "-i", "2")
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "idle")
    pmd.run("stop", "idle")
    w = web("--api-key", KEY)
    app = (("id", "0"), ("instance", "0"), ("name", "app"), ("namespace", "team"))
    metrics = scrape(w)
    assert metrics["pmdaemon_process_up"][app] == 1
    assert metrics["pmdaemon_process_up"][(("id", "3"), ("instance", "0"), ("name", "idle"),
                                           ("namespace", "default"))] == 0  # fmt: skip
    assert metrics["pmdaemon_process_memory_bytes"][app] > 1024 * 1024
    assert metrics["pmdaemon_process_restarts_total"][app] == 0
    assert len(metrics["pmdaemon_process_up"]) == 4
    assert {labels[1][1] for labels in metrics["pmdaemon_process_up"]} == {"0", "1"}
    assert metrics["pmdaemon_processes"][(("status", "online"),)] == 3
    assert metrics["pmdaemon_processes"][(("status", "stopped"),)] == 1
    assert metrics["pmdaemon_daemon_memory_bytes"][()] > 0
    assert metrics["pmdaemon_system_memory_bytes"][(("kind", "total"),)] > 0

    pid = pmd.proc("app")["pid"]
    os.kill(pid, signal.SIGKILL)
    pmd.wait_online("app", not_pid=pid)
    wait_until(lambda: scrape(w)["pmdaemon_process_restarts_total"][app] == 1, what="counter")

    for headers in ({}, {"X-API-Key": "wrong"}):
        response = httpx.get(f"{w.url}/metrics", headers=headers)
        assert response.status_code == 401 and response.text == UNAUTHORIZED
