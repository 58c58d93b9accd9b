"""The Supervisor: the registry of managed processes. It resolves identifiers, creates and
deletes processes, runs bulk operations in parallel, samples metrics, and persists the table
after every change. It knows nothing of HTTP or the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import msgspec

from pmdaemon import launcher, portalloc, proctree
from pmdaemon.errors import (
    DaemonStopping,
    InvalidInput,
    OperationFailed,
    PmdError,
    PortConflict,
    ProcessExists,
    ProcessNotFound,
    ReloadStopped,
    SpawnError,
)
from pmdaemon.events import EventBus
from pmdaemon.logpipes import DirectLogs
from pmdaemon.managed import ManagedProcess
from pmdaemon.model import Desired, ProcessSpec, ProcessState
from pmdaemon.paths import Home
from pmdaemon.ports import PortKind, PortSpec, parse_port_spec
from pmdaemon.redact import hide_arguments, hide_command_in, hide_query
from pmdaemon.specs import build_spec, check_watch_paths, validate_env
from pmdaemon.store import ProcessRecord, StateFile, Store
from pmdaemon.triggers import Triggers, app_key
from pmdaemon.units import format_bytes

SAVE_RETRY = 2.0  # seconds between attempts to save the state after a failure
SAVE_GAP = 0.1  # seconds between two saves of changes that come on their own
# A change that comes on its own (a crash) is saved a moment later, so that the restart it
# causes spawns first instead of waiting behind two fsyncs; a daemon killed in between
# loses nothing (the new run is found by its environment at the next boot).
SAVE_SOON = 0.02
log = logging.getLogger("pmdaemon.supervisor")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def numbered_files(spec: ProcessSpec) -> list[str]:
    """The file fields each instance of a cluster has its own copy of."""
    return ["pid_file"] + ([] if spec.merge_logs else ["out_file", "error_file", "log_file"])


def app_spec(member: ProcessSpec, group: str, index: int) -> ProcessSpec:
    """The app's spec back from one member's (``app-0.log`` → ``app.log``)."""
    changes: dict[str, Any] = {"name": group}
    for key in numbered_files(member):
        path = getattr(member, key)
        if path:
            stem, ext = os.path.splitext(path)
            if stem.endswith(f"-{index}"):
                changes[key] = stem[: -len(f"-{index}")] + ext
    return msgspec.structs.replace(member, **changes)


def instance_spec(spec: ProcessSpec, name: str, index: int, count: int) -> ProcessSpec:
    """The spec of instance ``index``: its own name, and its own log and PID files when the
    app names them (app.log → app-0.log), so instances never share a log unless the app
    asks so with merge_logs."""
    changes: dict[str, Any] = {"name": name}
    if count > 1:
        for key in numbered_files(spec):
            path = getattr(spec, key)
            if path:
                stem, ext = os.path.splitext(path)
                changes[key] = f"{stem}-{index}{ext}"
    return msgspec.structs.replace(spec, **changes)


def _not_wanted(proc: ManagedProcess) -> bool:
    """Checked under the process's lock: a stop that came first wins over a watch."""
    return proc.desired != Desired.RUNNING


def _held(proc: ManagedProcess) -> bool:
    """Checked under the process's lock: a stop that came first wins over a schedule."""
    return proc.stopped_by_user


def check_account(spec: ProcessSpec) -> None:
    """InvalidInput when the daemon cannot run ``spec`` as its user and group."""
    try:
        launcher.account(spec.user, spec.group)
    except SpawnError as exc:
        raise InvalidInput(exc.message, {"field": exc.details.get("field", "user")}) from None


class Supervisor:
    def __init__(
        self,
        home: Home,
        store: Store,
        bus: EventBus,
        *,
        metrics_interval: float = 1.0,
        logs: DirectLogs | None = None,
    ) -> None:
        self.home = home
        self.logs = logs or DirectLogs()
        self.store = store
        self.bus = bus
        self.metrics_interval = metrics_interval
        self.processes: dict[int, ManagedProcess] = {}
        self._next_id = 0
        self._save_scheduled = False
        self.save_failing = False
        self._last_save = 0.0
        self._retry: asyncio.TimerHandle | None = None
        self._cpu_prev: dict[int, tuple[float, int]] = {}
        self._last_full_sample = 0.0
        self._loaded_pids: dict[int, tuple[int | None, int | None, float | None]] = {}
        self.closing = False  # set at shutdown: nothing new may start
        self._memory_restarts: set[int] = set()
        self._pending_ports: dict[int, str] = {}  # override ports held during an operation
        self._app_locks: dict[str, asyncio.Lock] = {}
        self._starting: dict[int, float] = {}  # when each process began its start
        self._online_restarts: dict[int, int] = {}  # restarts at each one's last start
        self._tasks: set[asyncio.Task[None]] = set()
        self.triggers = Triggers(self._restart_on_change, self._run_on_schedule, home.root)

    # -- persistence ----------------------------------------------------------------------

    def load(self) -> None:
        state = self.store.load()
        self._next_id = state.next_id
        for record in state.processes:
            self._loaded_pids[record.id] = (record.pid, record.pid_start_ticks, record.started_at)
            self.processes[record.id] = self._managed(record)
            self._next_id = max(self._next_id, record.id + 1)

    def save(self) -> None:
        self._save_scheduled = False
        self._last_save = time.monotonic()
        with contextlib.suppress(RuntimeError):  # no loop: a final save at exit
            asyncio.get_running_loop()
            if not self.closing:
                # what is saved is what runs: watches and schedules follow the processes
                self.triggers.sync(self.processes.values())
        state = StateFile(
            next_id=self._next_id,
            processes=[p.record() for p in sorted(self.processes.values(), key=lambda p: p.id)],
        )
        try:
            self.store.save(state)
        except OSError as exc:  # the old generation stays; retried until it works
            if not self.save_failing:
                log.error("could not save state: %s; retrying every %gs", exc, SAVE_RETRY)
            self.save_failing = True
            with contextlib.suppress(RuntimeError):  # no loop: a final save at exit
                if self._retry is None:
                    self._retry = asyncio.get_running_loop().call_later(
                        SAVE_RETRY, self._retry_save
                    )
            return
        if self.save_failing:
            log.info("state saved again")
        self.save_failing = False

    def _retry_save(self) -> None:
        self._retry = None
        self.save()

    def _schedule_save(self) -> None:
        # Changes close together (a crash and its restart, a bulk stop, a thousand starts)
        # share a write: at most one every SAVE_GAP. Operations that answer a request save
        # before answering, so what a command did is on disk when it returns.
        if not self._save_scheduled:
            self._save_scheduled = True
            delay = max(SAVE_SOON, self._last_save + SAVE_GAP - time.monotonic())
            asyncio.get_running_loop().call_later(delay, self._save_if_scheduled)

    def _save_if_scheduled(self) -> None:
        if self._save_scheduled:
            self.save()

    def _managed(self, record: ProcessRecord) -> ManagedProcess:
        proc = ManagedProcess(record, self.home, self._changed, self.logs)
        proc.on_health = self._health_changed
        return proc

    def _health_changed(self, proc: ManagedProcess, previous: str | None) -> None:
        """health_update in the names of PMDaemon's api/websocket-api.md."""
        health = proc.health
        check = proc.spec.health_check
        status = health.status if health else None
        self.bus.publish(
            "health_update",
            {
                "id": proc.id,
                "process": proc.spec.name,
                "status": status,
                "previous_status": previous,
                "check_type": check.type if check else None,
                "error": health.last_error if health else None,
                "details": {  # goes to TCP clients: never a query string or an argument
                    "url": hide_query(check.url) if check else None,
                    "script": hide_arguments(check.script) if check else None,
                    "response_time": round(health.response_ms)
                    if health and health.response_ms is not None
                    else None,
                },
            },
        )
        if status == "unhealthy":
            self._event(proc, "health_check_failed", error=health.last_error if health else None)

    def _forget(self, proc: ManagedProcess) -> None:
        """A deleted process: say so, and drop what was kept for its events."""
        self._starting.pop(proc.id, None)
        self._online_restarts.pop(proc.id, None)
        self.bus.publish("process_deleted", {"id": proc.id, "name": proc.spec.name})

    def _event(self, proc: ManagedProcess, event: str, **details: Any) -> None:
        """A process_event (PMDaemon's lifecycle events: started, stopped, crashed,
        restarted, health_check_failed, memory_limit_exceeded)."""
        self.bus.publish(
            "process_event",
            {"event": event, "process": proc.spec.name, "id": proc.id, "details": details},
        )

    def _changed(self, proc: ManagedProcess, previous: ProcessState, reason: str | None) -> None:
        new = proc.state
        self.bus.publish(
            "process_status",
            {
                "id": proc.id,
                "name": proc.spec.name,
                "status": new.value,
                "previous_status": previous.value,
                "pid": proc.pid,
                "port": proc.port,
                # to every WebSocket client: never the command line's arguments
                "reason": hide_command_in(reason, proc.spec.script),
            },
        )
        if new == ProcessState.STARTING:
            self._starting[proc.id] = time.monotonic()
        elif new == ProcessState.ONLINE and previous == ProcessState.STARTING:
            began = self._starting.pop(proc.id, None)
            restarted = self._online_restarts.get(proc.id, proc.restarts) != proc.restarts
            self._online_restarts[proc.id] = proc.restarts
            self._event(
                proc,
                "restarted" if restarted else "started",
                pid=proc.pid,
                port=proc.port,
                startup_time=None if began is None else round((time.monotonic() - began) * 1000),
            )
        elif new == ProcessState.STOPPED and previous in (
            ProcessState.STOPPING,
            ProcessState.ONLINE,
        ):
            # an exit the policy takes as a stop (autorestart off, a stop_exit_code) too
            self._event(proc, "stopped", exit_code=proc.exit_code, signal=proc.exit_signal)
        elif previous == ProcessState.ONLINE and new in (
            ProcessState.RESTARTING,
            ProcessState.ERRORED,
        ):
            # No reason text: a failed restart's says the command line, which stays home.
            self._event(proc, "crashed", exit_code=proc.exit_code, signal=proc.exit_signal)
        self._schedule_save()

    # -- lookup ---------------------------------------------------------------------------

    def resolve(self, ident: str) -> list[ManagedProcess]:
        """Processes named by an id, a name, a cluster's group name, ``all`` (by id), or
        a namespace (PM2's `restart NAMESPACE`) when no app has that name."""
        if ident == "all":
            return self.sorted()
        if ident.isascii() and ident.isdigit() and len(ident) < 10:
            proc = self.processes.get(int(ident))
            if proc is not None:
                return [proc]
        else:
            found = [p for p in self.sorted() if p.spec.name == ident or p.group == ident]
            if not found:
                found = [p for p in self.sorted() if p.spec.namespace == ident]
            if found:
                return found
        shown = ident if len(ident) <= 64 else ident[:61] + "..."
        raise ProcessNotFound(f"no process with id or name {shown!r}", {"id": shown})

    def sorted(self) -> list[ManagedProcess]:
        return [self.processes[i] for i in sorted(self.processes)]

    def by_name(self, name: str) -> ManagedProcess | None:
        """The process with this name, or the first instance of the group of this name."""
        return next((p for p in self.sorted() if p.spec.name == name or p.group == name), None)

    def held_ports(self, exclude: Iterable[ManagedProcess] = ()) -> dict[int, str]:
        """Ports reserved by managed processes (assigned or overridden), and by whom."""
        skip = {p.id for p in exclude}
        held: dict[int, str] = dict(self._pending_ports)
        for proc in self.processes.values():
            if proc.id in skip:
                continue
            for port in (proc.assigned_port, proc.port_override):
                if port is not None:
                    held[port] = proc.spec.name
        return held

    # -- operations -----------------------------------------------------------------------

    def _check_room(
        self,
        spec: ProcessSpec,
        held: dict[int, str],
        planned: set[str],
        leaving: set[int],
        theirs: set[int],
    ) -> None:
        """ProcessExists or PortConflict if ``spec`` could not be planned once the
        processes ``leaving`` are gone; ``held`` and ``planned`` take what it would."""
        count = spec.instances
        names = [spec.name] if count == 1 else [f"{spec.name}-{i}" for i in range(count)]
        for name in dict.fromkeys([spec.name, *names]):
            existing = self.by_name(name)
            if (existing is not None and existing.id not in leaving) or name in planned:
                raise ProcessExists(
                    f"the name {name!r} is already taken; nothing of the file was applied",
                    {"name": name},
                )
        planned.update([spec.name, *names])
        if spec.port is not None:
            ports = portalloc.assign(parse_port_spec(spec.port), count, held, own=theirs)
            held.update({p: n for p, n in zip(ports, names, strict=True) if p is not None})

    def _plan(
        self,
        spec: ProcessSpec,
        base_env: Mapping[str, str],
        held: dict[int, str],
        planned: set[str] | None = None,
        source: str | None = None,
    ) -> list[ProcessRecord]:
        """The records of an app's instances, with their ports, before anything starts.
        Raises ProcessExists or PortConflict; ``held`` gains the ports taken and
        ``planned`` the names (for several apps planned together)."""
        planned = planned if planned is not None else set()
        count = spec.instances
        names = [spec.name] if count == 1 else [f"{spec.name}-{i}" for i in range(count)]
        for name in dict.fromkeys([spec.name, *names]):
            existing = self.by_name(name)
            if existing is not None or name in planned:
                where = f" (id {existing.id})" if existing is not None else " by another app"
                raise ProcessExists(
                    f"the name {name!r} is already taken{where}; restart it, or delete it first",
                    {"name": name},
                )
        planned.update([spec.name, *names])
        ports: list[int | None] = [None] * count
        if spec.port is not None:
            ports = list(portalloc.assign(parse_port_spec(spec.port), count, held))
            held.update(
                {port: name for port, name in zip(ports, names, strict=True) if port is not None}
            )
        now = time.time()
        return [
            ProcessRecord(
                id=-1,
                spec=instance_spec(spec, name, i, count),
                base_env=dict(base_env),
                desired=Desired.RUNNING if spec.enabled else Desired.STOPPED,
                created_at=now,
                group=spec.name if count > 1 else None,
                instance=i,
                assigned_port=port,
                source=source,
            )
            for i, (name, port) in enumerate(zip(names, ports, strict=True))
        ]

    def _register(self, records: list[ProcessRecord]) -> list[ManagedProcess]:
        procs = []
        for record in records:
            record.id = self._next_id
            self._next_id += 1
            proc = self._managed(record)
            self.processes[proc.id] = proc
            procs.append(proc)
        return procs

    async def _start_app(self, procs: list[ManagedProcess], *, fresh: bool = True) -> None:
        """Start an app's instances. A single process that cannot spawn stays as errored
        (with the reason). A cluster registered by this request is all or nothing: on any
        failure its records are dropped (and saved) first, then every instance is stopped,
        and the error raised. Instances that existed before are never removed here. A new
        app that is not enabled (PMDaemon's instances 0) is registered, stopped."""
        procs = [p for p in procs if p.spec.enabled]
        if not procs:
            return
        if not fresh or (len(procs) == 1 and procs[0].group is None):
            await self.each(procs, lambda p: p.start(), persist=False)
            return
        try:
            await self.each(procs, lambda p: p.start(), persist=False)
        except PmdError:
            for proc in procs:
                self.processes.pop(proc.id, None)
            self.save()  # a daemon killed during the clean-up leaves no half cluster
            await asyncio.gather(*(p.delete() for p in procs), return_exceptions=True)
            raise

    async def create(
        self, config: Mapping[str, Any], base_env: Mapping[str, str], cwd: str
    ) -> list[ManagedProcess]:
        """Validate, reserve ports, register and start a new app (one process, or one per
        instance). A single process that cannot spawn is kept as errored (so `info` can say
        why) and SpawnError raised; a cluster that cannot fully start leaves nothing."""
        self._refuse_if_closing()
        spec = build_spec(config, default_cwd=cwd)
        check_account(spec)
        check_watch_paths(spec)
        base_env = validate_env(base_env, "the captured environment")
        records = self._plan(spec, base_env, self.held_ports())
        procs = self._register(records)
        try:
            await self._start_app(procs)
        finally:
            self.save()
        self.sample(cpu=False)
        return procs

    async def create_many(
        self,
        configs: list[Mapping[str, Any]],
        base_env: Mapping[str, str],
        cwd: str,
        source: str | None = None,
    ) -> tuple[list[ManagedProcess], list[tuple[str, str]], list[str]]:
        """Start every app of an ecosystem file: all are validated, and their ports
        reserved, before any starts. An app whose name exists is started as it is.
        Returns the processes, the (name, reason) of the apps that did not start, and the
        names of the apps that existed already."""
        self._refuse_if_closing()
        base_env = validate_env(base_env, "the captured environment")
        specs = self._checked_specs(configs, cwd)
        held = self.held_ports()
        planned: set[str] = set()
        plans: list[list[ProcessRecord] | None] = []
        for spec in specs:  # every name and port is reserved before anything is registered
            exists = self.by_name(spec.name) is not None
            plans.append(None if exists else self._plan(spec, base_env, held, planned, source))
        apps: list[list[ManagedProcess]] = [
            self.resolve(spec.name) if plan is None else self._register(plan)
            for spec, plan in zip(specs, plans, strict=True)
        ]
        self.save()
        failures: list[tuple[str, str]] = []

        async def start(spec: ProcessSpec, procs: list[ManagedProcess], fresh: bool) -> None:
            if not spec.enabled:  # the file says instances 0: it is not to run
                return
            name = spec.name
            try:
                await self._start_app(procs, fresh=fresh)
            except PmdError as exc:
                failures.append((name, exc.message))

        await asyncio.gather(
            *(
                start(spec, procs, plan is not None)
                for spec, procs, plan in zip(specs, apps, plans, strict=True)
            )
        )
        self.save()
        self.sample(cpu=False)
        started = [p for procs in apps for p in procs if p.id in self.processes]
        existing = [spec.name for spec, plan in zip(specs, plans, strict=True) if plan is None]
        return started, failures, existing

    def _checked_specs(self, configs: list[Mapping[str, Any]], cwd: str) -> list[ProcessSpec]:
        specs = []
        for index, config in enumerate(configs):
            try:
                specs.append(build_spec(config, default_cwd=cwd))
                check_account(specs[-1])
                check_watch_paths(specs[-1])
            except InvalidInput as exc:
                raise InvalidInput(f"apps[{index}]: {exc.message}", exc.details) from None
        names = [spec.name for spec in specs]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise InvalidInput(f"duplicate name {duplicate!r} among the apps")
        return specs

    def _apps(self) -> dict[str, list[ManagedProcess]]:
        """Processes by app (a cluster's group name, or a single process's name)."""
        apps: dict[str, list[ManagedProcess]] = {}
        for proc in self.sorted():
            apps.setdefault(app_key(proc), []).append(proc)
        return apps

    def plan_apply(
        self,
        configs: list[Mapping[str, Any]],
        cwd: str,
        *,
        source: str | None = None,
        prune: bool = False,
    ) -> list[dict[str, Any]]:
        """What `apply` would do: per app of the file, create, update (with the fields that
        differ) or unchanged; with ``prune``, remove for the apps that an earlier start or
        apply of the same file made and that the file no longer has."""
        specs = self._checked_specs(configs, cwd)
        apps = self._apps()
        plan: list[dict[str, Any]] = []
        for spec in specs:
            procs = apps.get(spec.name)
            if not procs:
                plan.append({"name": spec.name, "action": "create", "changes": []})
                continue
            first = procs[0]
            current = (
                app_spec(first.spec, first.group, first.instance) if first.group else first.spec
            )
            current = msgspec.structs.replace(current, instances=len(procs))
            old, new = msgspec.structs.asdict(current), msgspec.structs.asdict(spec)
            changes = sorted(k for k in new if old.get(k) != new[k])
            plan.append(
                {
                    "name": spec.name,
                    "action": "update" if changes else "unchanged",
                    "changes": changes,
                }
            )
        if prune:
            named = {spec.name for spec in specs}
            for key, procs in apps.items():
                if key not in named and source is not None and procs[0].source == source:
                    plan.append({"name": key, "action": "remove", "changes": []})
        return plan

    async def apply(
        self,
        configs: list[Mapping[str, Any]],
        base_env: Mapping[str, str],
        cwd: str,
        *,
        source: str | None = None,
        prune: bool = False,
    ) -> tuple[list[dict[str, Any]], list[ManagedProcess], list[tuple[str, str]]]:
        """Make the processes what the file says: removed apps go first (their names and
        ports become free), changed apps are made anew from the file (as compose recreates
        a changed service), new apps are created, and every app of the file that is meant
        to run is started."""
        self._refuse_if_closing()
        base_env = validate_env(base_env, "the captured environment")
        plan = self.plan_apply(configs, cwd, source=source, prune=prune)
        apps = self._apps()
        gone = [
            p for item in plan if item["action"] in ("remove", "update") for p in apps[item["name"]]
        ]
        # Names and ports are checked as if the replaced apps were gone, before any is.
        held = self.held_ports(exclude=gone)
        planned: set[str] = set()
        leaving = {p.id for p in gone}
        theirs = {pt for p in gone for pt in (p.assigned_port, p.port_override) if pt}
        for spec, item in zip(self._checked_specs(configs, cwd), plan, strict=False):
            if item["action"] in ("create", "update"):
                self._check_room(spec, held, planned, leaving, theirs)

        async def remove(proc: ManagedProcess) -> None:
            await proc.delete()
            self.processes.pop(proc.id, None)
            self._forget(proc)

        await self.each(gone, remove)
        procs, failures, _ = await self.create_many(configs, base_env, cwd, source)
        return plan, procs, failures

    async def each(
        self,
        procs: Iterable[ManagedProcess],
        action: Callable[[ManagedProcess], Awaitable[Any]],
        *,
        persist: bool = True,
    ) -> None:
        """Run ``action`` on every process in parallel; the first error is raised after all
        have finished, so one bad process never leaves the others half-done. With
        ``persist`` (a whole operation) the state is saved and memory sampled after; a
        caller that runs many of these saves once itself."""
        results = await asyncio.gather(*(action(p) for p in procs), return_exceptions=True)
        if persist:
            self.save()
            self.sample(cpu=False)  # so the answer shows the memory of what was started
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def _refuse_if_closing(self) -> None:
        if self.closing:
            raise DaemonStopping("the daemon is shutting down and starts nothing new")

    async def start(self, ident: str) -> list[ManagedProcess]:
        self._refuse_if_closing()
        procs = self.resolve(ident)
        await self.each(procs, lambda p: p.start())
        return procs

    async def stop(self, ident: str) -> list[ManagedProcess]:
        procs = self.resolve(ident)
        await self.each(procs, lambda p: p.stop())
        return procs

    def _override_ports(
        self, procs: list[ManagedProcess], port: int | str | None
    ) -> list[int | None]:
        """Ports for a runtime override of ``procs``: instance i of a range gets its i-th
        port. Ports of other managed processes are refused; ports the targets hold now
        count as free; every other port must be free on the host."""
        if port is None:
            return [None] * len(procs)
        own = {p.port for p in procs if p.port is not None}
        return list(
            portalloc.assign(
                parse_port_spec(port), len(procs), self.held_ports(exclude=procs), own=own
            )
        )

    @contextlib.contextmanager
    def _reserving(self, procs: list[ManagedProcess], ports: list[int | None]) -> Iterator[None]:
        """Hold override ports for the whole operation, so nothing else is given them
        while the processes restart one by one."""
        taken = {pt: p.spec.name for p, pt in zip(procs, ports, strict=True) if pt is not None}
        self._pending_ports.update(taken)
        try:
            yield
        finally:
            for pt in taken:
                self._pending_ports.pop(pt, None)

    def _lock_for(self, procs: list[ManagedProcess]) -> asyncio.Lock:
        """One lock per app (cluster group or single process) for multi-step operations."""
        key = procs[0].group or procs[0].spec.name if procs else ""
        return self._app_locks.setdefault(key, asyncio.Lock())

    async def restart(
        self,
        ident: str,
        env: Mapping[str, str] | None = None,
        port: int | str | None = None,
        reason: str = "manual",
    ) -> list[ManagedProcess]:
        self._refuse_if_closing()
        if env is not None:
            env = validate_env(env, "the environment")
        procs = self.resolve(ident)
        ports = self._override_ports(procs, port)
        port_of = {p.id: pt for p, pt in zip(procs, ports, strict=True)}
        with self._reserving(procs, ports):
            await self.each(procs, lambda p: p.restart(reason, env, port_of[p.id]))
        return procs

    async def reload(self, ident: str, port: int | str | None = None) -> list[ManagedProcess]:
        """A rolling restart: one instance at a time, the next only once the previous new
        one is ready (it stays up for min_uptime). Stops at the first that is not ready:
        those not yet reloaded keep running, and ReloadStopped says why. A single
        process is simply restarted."""
        self._refuse_if_closing()
        procs = self.resolve(ident)
        if len(procs) == 1 and procs[0].group is None:
            return await self.restart(ident, None, port, reason="reload")
        async with self._lock_for(procs):
            ports = self._override_ports(procs, port)
            with self._reserving(procs, ports):
                for index, (proc, pt) in enumerate(zip(procs, ports, strict=True)):
                    left = [p.spec.name for p in procs[index + 1 :]]
                    rest = f"; not reloaded, still running: {', '.join(left)}" if left else ""
                    try:
                        await proc.restart("reload", None, pt)
                    except PmdError as exc:
                        raise ReloadStopped(
                            f"reload stopped: {exc.message}{rest}",
                            {"failed": proc.spec.name, "not_reloaded": left},
                        ) from None
                    finally:
                        self.save()
                    problem = await proc.wait_ready(proc.spec.wait_timeout)
                    if problem is not None:
                        raise ReloadStopped(
                            f"reload stopped: {problem}{rest}",
                            {"failed": proc.spec.name, "not_reloaded": left},
                        )
        return procs

    async def scale(self, ident: str, count: int) -> list[ManagedProcess]:
        """Add or remove instances of a cluster (named by its group name), following its
        port spec; new instances take the lowest free instance numbers."""
        self._refuse_if_closing()
        if not 1 <= count <= 1024:
            raise InvalidInput(f"invalid instance count {count}: expected 1 to 1024")
        procs = self.resolve(ident)
        group = procs[0].group
        if group is None or group != ident:
            raise InvalidInput(
                f"{ident!r} is not a cluster's name: scale works on apps started with several "
                "instances (-i N, or instances in a file), named by the app's name"
            )
        async with self._lock_for(procs):
            procs = sorted(
                (p for p in self.processes.values() if p.group == group), key=lambda p: p.instance
            )
            if count < len(procs):
                for proc in reversed(procs[count:]):
                    await proc.delete()
                    self.processes.pop(proc.id, None)
                    self._forget(proc)
            elif count > len(procs):
                await self._grow(group, procs, count)
            members = [p for p in self.sorted() if p.group == group]
            for proc in members:
                proc.spec = msgspec.structs.replace(proc.spec, instances=len(members))
            self.save()
        return members

    async def _grow(self, group: str, procs: list[ManagedProcess], count: int) -> None:
        used = {p.instance for p in procs}
        indexes = [i for i in range(count + len(procs)) if i not in used][: count - len(procs)]
        first = procs[0]
        spec = app_spec(first.spec, group, first.instance)
        names = [f"{group}-{i}" for i in indexes]
        if any(len(name) > 64 for name in names):
            raise InvalidInput(
                f"cannot scale {group!r} to {count}: instance names would be "
                "longer than 64 characters"
            )
        for name in names:
            if self.by_name(name) is not None:
                raise ProcessExists(f"a process named {name!r} already exists", {"name": name})
        ports: list[int | None] = [None] * len(indexes)
        if spec.port is not None:
            port_spec = parse_port_spec(spec.port)
            held = self.held_ports()
            if port_spec.kind == PortKind.AUTO:
                ports = list(portalloc.assign(port_spec, len(indexes), held))
            else:
                wanted = [port_spec.first + i for i in indexes]
                if port_spec.kind == PortKind.SINGLE or wanted[-1] > port_spec.last:
                    raise InvalidInput(
                        f"cannot scale {group!r} to {count}: its port {spec.port} has no room "
                        f"for instance {indexes[-1]}",
                        {"field": "port"},
                    )
                for port in wanted:
                    portalloc.assign(PortSpec(PortKind.SINGLE, port, port), 1, held)
                ports = list(wanted)
        now = time.time()
        records = [
            ProcessRecord(
                id=-1,
                spec=instance_spec(spec, name, i, 2),
                base_env=dict(first.base_env),
                desired=Desired.RUNNING,
                created_at=now,
                group=group,
                instance=i,
                assigned_port=pt,
            )
            for name, i, pt in zip(names, indexes, ports, strict=True)
        ]
        await self._start_app(self._register(records))

    def counts(self) -> dict[str, int]:
        counts = {state.value: 0 for state in ProcessState}
        for proc in self.processes.values():
            counts[proc.state.value] += 1
        counts["total"] = len(self.processes)
        return counts

    async def delete(self, ident: str) -> list[ManagedProcess]:
        procs = self.resolve(ident)

        async def remove(proc: ManagedProcess) -> None:
            await proc.delete()
            self.processes.pop(proc.id, None)
            self._forget(proc)

        await self.each(procs, remove)
        return procs

    def reset(self, ident: str) -> list[ManagedProcess]:
        """PM2's reset: the restart counts of these processes start again from 0."""
        procs = self.resolve(ident)
        for proc in procs:
            proc.reset_counters()
        self.save()
        return procs

    def signal(self, ident: str, sig_name: str) -> list[ManagedProcess]:
        try:
            sig = signal.Signals[
                sig_name.upper() if sig_name.upper().startswith("SIG") else "SIG" + sig_name.upper()
            ]
        except KeyError:
            if (
                sig_name.isascii()
                and sig_name.isdigit()
                and int(sig_name) in {s.value for s in signal.Signals}
            ):
                sig = signal.Signals(int(sig_name))
            else:
                raise InvalidInput(
                    f"unknown signal {sig_name[:32]!r}: expected a name such as SIGUSR1 or HUP, "
                    "or a number"
                ) from None
        procs = self.resolve(ident)
        for proc in procs:
            proc.send_signal(sig)
        return procs

    # -- save / resurrect -----------------------------------------------------------------

    def save_dump(self, path: Path) -> int:
        """Write the process list (configs, captured environments, desired states) to
        ``path`` for `resurrect`; the previous dump is kept as ``path.prev``."""
        state = StateFile(next_id=self._next_id, processes=[p.record() for p in self.sorted()])
        try:
            Store(path, path.with_name(path.name + ".prev")).save(state)
        except OSError as exc:
            raise OperationFailed(f"cannot write {path}: {exc.strerror or exc}") from None
        return len(state.processes)

    async def resurrect(self, path: Path) -> tuple[list[ManagedProcess], list[str]]:
        """Re-create the processes of a dump that do not exist now (new ids, the same
        names, configs, environments and reserved ports) and start those that were meant
        to run. Returns them and the names already present."""
        self._refuse_if_closing()
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise InvalidInput(
                f"no saved process list at {path}: run `pmdaemon save` first"
            ) from None
        except OSError as exc:
            raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
        try:
            dump = msgspec.json.decode(data, type=StateFile)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidInput(f"{path} is not a process list saved by pmdaemon ({exc})") from None
        present: list[str] = []
        held = self.held_ports()
        records: list[ProcessRecord] = []
        for old in sorted(dump.processes, key=lambda r: r.id):
            name = old.spec.name
            if self.by_name(name) is not None:
                present.append(name)
                continue
            port = old.assigned_port
            if port is not None and port in held:
                raise PortConflict(
                    f"cannot restore {name}: its port {port} is held by {held[port]}",
                    {"port": port},
                )
            if port is not None:
                held[port] = name
            records.append(
                ProcessRecord(
                    id=-1,
                    spec=old.spec,
                    base_env=validate_env(old.base_env, f"the saved environment of {name}"),
                    desired=old.desired,
                    created_at=old.created_at,
                    group=old.group,
                    instance=old.instance,
                    assigned_port=port,
                    stopped_by_user=old.stopped_by_user,
                    source=old.source,
                )
            )
        procs = self._register(records)
        self.save()

        async def start(proc: ManagedProcess) -> None:
            with contextlib.suppress(PmdError):  # recorded as errored with its reason
                await proc.start()

        await self.each([p for p in procs if p.desired == Desired.RUNNING], start)
        return procs, present

    # -- triggers -------------------------------------------------------------------------

    async def _restart_on_change(self, key: str, reason: str) -> None:
        """A watched file changed: restart the app's instances that are meant to run."""
        procs = [
            p
            for p in self.sorted()
            if app_key(p) == key and p.desired == Desired.RUNNING and not p.deleted
        ]
        if not procs or self.closing:
            return
        log.info("%s: %s: restarting", key, reason)
        await self.each(procs, lambda p: p.restart(reason, keep_port=True, unless=_not_wanted))

    async def _run_on_schedule(self, proc: ManagedProcess) -> None:
        """cron_restart fired: restart a running app, or run a one-shot job again; an app
        someone stopped stays stopped."""
        if proc.stopped_by_user or proc.deleted or self.closing:
            return
        reason = f"cron: {proc.spec.cron_restart}"
        log.info("%s (id %d): %s", proc.spec.name, proc.id, reason)
        await self.each([proc], lambda p: p.restart(reason, keep_port=True, unless=_held))

    # -- daemon lifecycle -----------------------------------------------------------------

    async def boot(self) -> None:
        """Bring every process to its desired state: adopt live children of a previous
        daemon, start the rest that should run."""
        to_start: list[ManagedProcess] = []
        to_stop: list[ManagedProcess] = []
        for proc in self.sorted():
            pid, ticks, started_at = self._loaded_pids.pop(proc.id, (None, None, None))
            if pid is not None and proc.adopt(pid, ticks, started_at):
                log.info("adopted %s (id %d) pid %s", proc.spec.name, proc.id, proc.pid)
                if proc.desired != Desired.RUNNING:
                    to_stop.append(proc)  # the previous daemon died while stopping it
            elif proc.desired == Desired.RUNNING:
                to_start.append(proc)
        adopted = await self._settle_strays()
        to_start = [p for p in to_start if p not in adopted]

        async def start(proc: ManagedProcess) -> None:
            try:
                await proc.start()
            except PmdError:
                pass  # recorded as errored with its reason
            except Exception:  # one broken record must not stop the others or the daemon
                log.exception("could not start %s (id %d)", proc.spec.name, proc.id)

        await self.each(to_stop, lambda p: p.stop())
        await self.each(to_start, start)

    async def _settle_strays(self) -> list[ManagedProcess]:
        """Children of an earlier daemon of this home that its state does not record (it
        was SIGKILLed between a spawn and the state write): one that is the only live run of
        a process that should run is adopted; any other is killed, so nothing runs twice
        and nothing runs unsupervised. Returns the processes adopted."""
        table = proctree.snapshot()
        strays = proctree.tagged_sessions(str(self.home.root), table)
        live = {p.pid for p in self.processes.values() if p.pid is not None}
        claims: dict[int, list[int]] = {}
        for pid, ident in strays.items():
            if pid not in live and not proctree.has_ancestor(pid, live, table):
                claims.setdefault(ident, []).append(pid)
        adopted: list[ManagedProcess] = []
        kills: list[tuple[int, int | None]] = []
        for ident, pids in claims.items():
            proc = self.processes.get(ident)
            pids.sort(key=lambda pid: table[pid].start_ticks)
            if (
                proc is not None
                and proc.pid is None
                and proc.desired == Desired.RUNNING
                and proc.adopt(pids[-1], table[pids[-1]].start_ticks, None)
            ):
                log.warning("adopted unrecorded pid %d of %s", pids[-1], proc.spec.name)
                adopted.append(proc)
                pids = pids[:-1]
            for pid in pids:
                log.warning("killing pid %d: a run of id %d that no record owns", pid, ident)
                kills.append((pid, table[pid].start_ticks))
        await asyncio.gather(*(proctree.kill_stray(pid, ticks) for pid, ticks in kills))
        return adopted

    async def shutdown(self) -> None:
        """Stop everything in parallel, keeping desired states, and save."""
        self.closing = True
        self.triggers.close()
        await self.each(self.sorted(), lambda p: p.stop(keep_desired=True))

    # -- metrics --------------------------------------------------------------------------

    def sample(self, procs: Iterable[ManagedProcess] | None = None, *, cpu: bool = True) -> None:
        """CPU and RSS of each process tree (the app and descendants), for ``procs`` or
        every live process. With ``cpu`` off only memory is refreshed, leaving the CPU
        interval undisturbed. CPU is the average since the process's previous sample."""
        everything = procs is None
        targets = [
            p for p in (self.processes.values() if procs is None else procs) if p.pid is not None
        ]
        now = time.monotonic()
        table: dict[int, proctree.ProcInfo] | None = None
        children: dict[int, list[proctree.ProcInfo]] = {}
        for proc in targets:
            assert proc.pid is not None
            # Walk each app's own tree; read all of /proc only on kernels that cannot.
            members = None if table is not None else proctree.tree(proc.pid)
            if members is None:
                if table is None:
                    table = proctree.snapshot()
                    children = proctree.index_children(table)
                root = table.get(proc.pid)
                members = [root, *proctree.descendants(proc.pid, children)] if root else []
            if not members:
                continue
            ticks = sum(m.cpu_ticks for m in members)
            proc.memory_usage = sum(m.rss_pages for m in members) * PAGE_SIZE
            self._enforce_memory_limit(proc)
            if not cpu:
                continue
            prev = self._cpu_prev.get(proc.pid)
            if prev is not None and now > prev[0]:
                used = max(0, ticks - prev[1]) / CLK_TCK
                proc.cpu_usage = 100.0 * used / (now - prev[0])
            self._cpu_prev[proc.pid] = (now, ticks)
        if everything and cpu:
            self._last_full_sample = now
            live = {p.pid for p in targets}
            for pid in [pid for pid in self._cpu_prev if pid not in live]:
                del self._cpu_prev[pid]

    def refresh(self) -> None:
        """Before showing metrics: sample everything unless that was done less than one
        sampling interval ago. Values shown are never older than the interval."""
        if time.monotonic() - self._last_full_sample >= self.metrics_interval:
            self.sample()
        else:  # a run that started since has not been measured yet
            fresh = [p for p in self.processes.values() if p.pid is not None and not p.memory_usage]
            if fresh:
                self.sample(fresh, cpu=False)

    def tick(self, watched: bool) -> bool:
        """The daemon's periodic sample. While someone watches (WebSocket clients, log
        followers) everything is sampled; otherwise only apps with a memory limit, so
        limits act within the interval. False when there was nothing to sample: an
        unwatched daemon without limits then need not wake until something changes."""
        if watched:
            self.sample()
            return True
        limited = [
            p
            for p in self.processes.values()
            if p.pid is not None and p.spec.max_memory_restart is not None
        ]
        if limited:
            self.sample(limited)
        return bool(limited)

    def _enforce_memory_limit(self, proc: ManagedProcess) -> None:
        limit = proc.spec.max_memory_restart
        if limit is None or proc.memory_usage <= limit or proc.state != ProcessState.ONLINE:
            return
        if proc.id in self._memory_restarts:
            return  # one restart at a time
        reason = (
            f"memory limit (used {format_bytes(proc.memory_usage)} > limit {format_bytes(limit)})"
        )
        log.warning("%s (id %d): %s", proc.spec.name, proc.id, reason)
        self._event(proc, "memory_limit_exceeded", memory=proc.memory_usage, limit=limit)

        async def restart() -> None:
            try:
                await proc.restart(reason, keep_port=True)
            except PmdError as exc:
                log.error("%s: restart after memory limit failed: %s", proc.spec.name, exc)
            finally:
                self._memory_restarts.discard(proc.id)
                self._schedule_save()

        self._memory_restarts.add(proc.id)
        task = asyncio.get_running_loop().create_task(restart())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
