"""Restarts that come from outside the app: its files changing (``watch``) and its cron
schedule (``cron_restart``). The Supervisor calls ``sync`` whenever its processes or their
specs change; this module keeps exactly one watch per app and one schedule per process."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

from pmdaemon import cron
from pmdaemon.managed import ManagedProcess
from pmdaemon.model import ProcessSpec
from pmdaemon.watch import Debounce, Ignore, Inotify, TreeWatch

log = logging.getLogger("pmdaemon.triggers")
MAX_SLEEP = 60.0  # a schedule looks at the wall clock at least this often (clock changes)
# An app that writes into its own watched tree as it starts would restart for ever: after
# STORM watch restarts within STORM_WINDOW its watch pauses for STORM_WINDOW, saying why.
# (A person's edit right after a restart must still count, so changes are never dropped
# otherwise; one that comes during a restart restarts it once more, after.)
STORM, STORM_WINDOW = 10, 60.0

WatchKey = tuple[str, tuple[str, ...], tuple[str, ...] | None, float]


def app_key(proc: ManagedProcess) -> str:
    return proc.group or proc.spec.name


def watch_key(spec: ProcessSpec) -> WatchKey:
    return (spec.cwd, spec.watch, spec.ignore_watch, spec.watch_delay)


class Triggers:
    def __init__(
        self,
        restart_app: Callable[[str, str], Awaitable[None]],
        fire_cron: Callable[[ManagedProcess], Awaitable[None]],
        home: Path | None = None,
    ) -> None:
        self._home = home
        self._restart_app = restart_app
        self._fire_cron = fire_cron
        self._hub: Inotify | None = None
        self._watches: dict[str, tuple[WatchKey, TreeWatch, Debounce]] = {}
        self._crons: dict[int, tuple[str, asyncio.Task[None]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.watch_problems: dict[str, str] = {}
        self._quiet_until: dict[str, float] = {}  # app → monotonic time changes count again
        self._recent: dict[str, deque[float]] = {}  # app → its recent watch restarts

    def sync(self, procs: Iterable[ManagedProcess]) -> None:
        procs = [p for p in procs if not p.deleted]
        self._sync_watches(procs)
        self._sync_crons(procs)

    def close(self) -> None:
        for _, tree, debounce in self._watches.values():
            debounce.cancel()
            if self._hub is not None:
                self._hub.unwatch(tree)
        self._watches.clear()
        for _, task in self._crons.values():
            task.cancel()
        self._crons.clear()
        for task in list(self._tasks):  # a restart a change or a schedule began
            task.cancel()
        if self._hub is not None:
            self._hub.close()
            self._hub = None

    # -- watch ----------------------------------------------------------------------------

    def _sync_watches(self, procs: list[ManagedProcess]) -> None:
        wanted: dict[str, tuple[WatchKey, ManagedProcess]] = {}
        for proc in procs:
            if proc.spec.watch:
                wanted.setdefault(app_key(proc), (watch_key(proc.spec), proc))
        for key in list(self._watches):
            tree = self._watches[key][1]
            if key not in wanted or wanted[key][0] != self._watches[key][0] or tree.lost:
                _, tree, debounce = self._watches.pop(key)
                debounce.cancel()
                if self._hub is not None:
                    self._hub.unwatch(tree)
                self.watch_problems.pop(key, None)
        for key, (signature, proc) in wanted.items():
            if key not in self._watches:
                self._start_watch(key, signature, proc)

    def _start_watch(self, key: str, signature: WatchKey, proc: ManagedProcess) -> None:
        if self._hub is None:
            try:
                self._hub = Inotify()
            except OSError as exc:
                self.watch_problems[key] = f"files are not watched: {exc.strerror}"
                log.error("%s: watch: %s", key, self.watch_problems[key])
                proc.watch_problem = self.watch_problems[key]
                return
        spec = proc.spec
        # The app's own log and pid files may live in the tree: writing them is no change.
        own = [str(proc.out_log), str(proc.error_log)]
        own += [str(p) for p in (proc.combined_log, proc.pid_file) if p is not None]
        if self._home is not None:  # its state and logs change on every restart
            own.append(str(self._home))

        def fire(path: str) -> None:
            if time.monotonic() < self._quiet_until.get(key, 0.0):
                return
            recent = self._recent.setdefault(key, deque(maxlen=STORM))
            now = time.monotonic()
            recent.append(now)
            if len(recent) == STORM and now - recent[0] < STORM_WINDOW:
                recent.clear()
                self._quiet_until[key] = now + STORM_WINDOW
                self.watch_problems[key] = proc.watch_problem = (
                    f"restarted {STORM} times within {STORM_WINDOW:g} s by changes (the last: "
                    f"{path}): watching paused for {STORM_WINDOW:g} s. Does the app write into "
                    "its watched tree? Add that path to ignore_watch"
                )
                log.warning("%s: watch: %s", key, proc.watch_problem)
                return
            self._spawn(self._watch_restart(key, path))

        def changed(path: str) -> None:
            if time.monotonic() >= self._quiet_until.get(key, 0.0):
                debounce(path)

        debounce = Debounce(spec.watch_delay, fire)
        tree = TreeWatch(Path(spec.cwd), spec.watch, Ignore(spec.ignore_watch, own), changed)
        self._watches[key] = (signature, tree, debounce)
        hub = self._hub

        async def begin() -> None:
            current = self._watches.get(key)
            if current is None or current[1] is not tree:
                return  # replaced or removed before it began
            await hub.watch(tree)
            if tree.problem:
                self.watch_problems[key] = tree.problem
                log.warning("%s: watch: %s", key, tree.problem)
                proc.watch_problem = tree.problem

        self._spawn(begin())

    async def _watch_restart(self, key: str, path: str) -> None:
        await self._restart_app(key, f"watch: {path} changed")

    # -- cron -----------------------------------------------------------------------------

    def _sync_crons(self, procs: list[ManagedProcess]) -> None:
        wanted = {p.id: p for p in procs if p.spec.cron_restart}
        for pid in list(self._crons):
            proc = wanted.get(pid)
            if proc is None or proc.spec.cron_restart != self._crons[pid][0]:
                self._crons.pop(pid)[1].cancel()
                if proc is not None:
                    proc.next_cron_at = None
        for pid, proc in wanted.items():
            if pid not in self._crons:
                expression = proc.spec.cron_restart
                assert expression is not None
                task = asyncio.get_running_loop().create_task(self._schedule(proc, expression))
                self._crons[pid] = (expression, task)

    async def _schedule(self, proc: ManagedProcess, expression: str) -> None:
        try:
            schedule = cron.parse(expression)
        except cron.CronError as exc:  # checked on the way in; a saved state may be older
            log.error("%s: cron_restart %r: %s", proc.spec.name, expression, exc)
            return
        while not proc.deleted:
            upcoming = schedule.next_after(dt.datetime.now())
            if upcoming is None:
                log.warning("%s: cron_restart %r never fires", proc.spec.name, expression)
                proc.next_cron_at = None
                return
            at = upcoming.timestamp()
            # A local time of the repeated hour after a DST change may lie in the past.
            while at <= time.time() and upcoming is not None:
                upcoming = schedule.next_after(upcoming)
                at = upcoming.timestamp() if upcoming is not None else at
            if upcoming is None:
                proc.next_cron_at = None
                return
            proc.next_cron_at = at
            while (left := at - time.time()) > 0:
                await asyncio.sleep(min(left, MAX_SLEEP))
            if proc.deleted:
                return
            try:
                await self._fire_cron(proc)
            except Exception:  # one failed run never ends the schedule
                log.exception("%s: cron run failed", proc.spec.name)

    def _spawn(self, job: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await job
            except Exception:
                log.exception("a triggered restart failed")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
