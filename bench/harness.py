"""Scenario plumbing: command line, managers' lifetime, results and their JSON line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from common import Stats, ToolMissing, exit_on_signals, idle_argv
from manager import Manager, ManagerMissing
from pm2 import Pm2
from pmd import Pmd

# Construction order matters: pmdaemon is looked up before PM2 is installed or started,
# so a missing pmdaemon fails fast.
FACTORIES: dict[str, Callable[[], Manager]] = {"pmd": Pmd, "pm2": Pm2}
LABELS = {"pmd": "pmdaemon", "pm2": "PM2", "file": "plain file", "supd": "supervisord"}
JSON_PREFIX = "BENCH_JSON "


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--managers",
        default="pmd,pm2",
        help="comma-separated managers to measure: pmd, pm2 (default: both)",
    )
    return p


def manager_keys(arg: str) -> list[str]:
    keys = [k.strip() for k in arg.split(",") if k.strip()]
    unknown = set(keys) - FACTORIES.keys()
    if unknown or not keys:
        raise SystemExit(f"--managers: expected pmd and/or pm2, got {arg!r}")
    return [k for k in FACTORIES if k in keys]


@contextmanager
def open_managers(keys: list[str]) -> Iterator[list[Manager]]:
    """The managers, each with its own home; every daemon is killed on the way out
    (also on an exception, Ctrl-C, SIGTERM or SIGHUP)."""
    exit_on_signals()
    with ExitStack() as stack:
        yield [stack.enter_context(FACTORIES[k]()) for k in keys]


@dataclass
class Row:
    """One line of results: the same figure for each manager measured.

    The ratio is pmdaemon's median over the baseline's: PM2's, or another reference
    measured in the same run (a key of LABELS, e.g. "file": the same work without any
    manager), which the report then names next to its figure.
    """

    scenario: str
    unit: str
    target: str
    results: dict[str, Stats] = field(default_factory=dict)
    met: bool | None = None
    baseline: str = "pm2"

    @property
    def ratio(self) -> float | None:
        pmd, base = self.results.get("pmd"), self.results.get(self.baseline)
        return pmd.median / base.median if pmd and base and base.median else None

    def judge(self, check: Callable[[Stats, Stats], bool]) -> Row:
        """Set `met` from check(pmdaemon, baseline) when both were measured."""
        pmd, base = self.results.get("pmd"), self.results.get(self.baseline)
        self.met = check(pmd, base) if pmd and base else None
        return self

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "unit": self.unit,
            "target": self.target,
            "met": self.met,
            "ratio": self.ratio,
            "baseline": self.baseline,
            "results": {k: s.to_json() for k, s in self.results.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Row:
        results = {k: Stats.from_json(v) for k, v in data["results"].items()}
        return cls(
            data["scenario"],
            data["unit"],
            data["target"],
            results,
            data["met"],
            data.get("baseline", "pm2"),
        )

    def other_cell(self) -> str:
        """The figure beside pmdaemon's: PM2's, or the named reference's."""
        stats = fmt_stats(self.results.get(self.baseline), self.unit)
        return stats if self.baseline == "pm2" else f"{LABELS[self.baseline]}: {stats}"

    def ratio_cell(self) -> str:
        ratio = fmt_ratio(self.ratio)
        return (
            ratio
            if self.baseline == "pm2" or self.ratio is None
            else f"{ratio} {LABELS[self.baseline]}"
        )


def fmt_stats(stats: Stats | None, unit: str) -> str:
    if stats is None:
        return "—"
    d = 2 if max(abs(stats.min), abs(stats.max)) < 1 else 1  # small figures keep 2 decimals
    return f"{stats.median:.{d}f} {unit} ({stats.min:.{d}f}\N{EN DASH}{stats.max:.{d}f})"


def fmt_ratio(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio:.2f}\N{MULTIPLICATION SIGN}"


def fmt_met(met: bool | None) -> str:
    return "—" if met is None else ("yes" if met else "**no**")


def report(rows: list[Row], managers: list[Manager], notes: dict[str, Any] | None = None) -> None:
    """Print the rows for a person, then one JSON line for bench/run."""
    for row in rows:
        print(f"\n{row.scenario}")
        for key, label in LABELS.items():
            if key in FACTORIES or key in row.results:
                print(f"  {label:<11} {fmt_stats(row.results.get(key), row.unit)}")
        print(f"  ratio       {row.ratio_cell()}   target: {row.target}   met: {fmt_met(row.met)}")
    payload = {
        "rows": [r.to_json() for r in rows],
        "versions": {m.key: m.version() for m in managers},
        "notes": notes or {},
    }
    print(JSON_PREFIX + json.dumps(payload), flush=True)


def main(scenario: Callable[[], None]) -> None:
    """Run a scenario's main; a missing manager or tool is a one-line error (exit status 2)."""
    try:
        scenario()
    except (ManagerMissing, ToolMissing) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:  # the managers were already killed on the way out
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None


def start_idle(managers: list[Manager], prefix: str, count: int, timeout: float) -> list[str]:
    """Start `count` idle apps named PREFIX-I in each manager (interleaved, so that both
    see the same machine) and wait until all are online; returns the names."""
    names = [f"{prefix}-{i}" for i in range(count)]
    for name in names:
        for m in managers:
            m.start(name, idle_argv(idle_tag(m, name)))
    for m in managers:
        m.wait_online(names, timeout)
    return names


def idle_tag(m: Manager, name: str) -> str:
    """Marker in an idle child's command line, unique per manager and app."""
    return f"pmdbench:{m.key}:{name}"
