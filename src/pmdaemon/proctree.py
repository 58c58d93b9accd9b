"""Process trees read straight from /proc, and the tree kill that stop relies on: the
group gets the signal, escaped descendants are found and signalled too, and pidfds tell
when each one is gone (a zombie counts as gone)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProcInfo:
    pid: int
    ppid: int
    pgrp: int
    session: int
    state: str
    start_ticks: int
    cpu_ticks: int = 0
    rss_pages: int = 0


def _read(path: str) -> bytes | None:
    """A small /proc file with bare system calls (cheaper than a Python file object,
    which matters once a second for hundreds of processes)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)


def read_stat(pid: int) -> ProcInfo | None:
    raw = _read(f"/proc/{pid}/stat")
    if raw is None:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        return ProcInfo(
            pid,
            int(fields[1]),
            int(fields[2]),
            int(fields[3]),
            fields[0].decode(),
            int(fields[19]),
            int(fields[11]) + int(fields[12]),
            int(fields[21]),
        )
    except (IndexError, ValueError):
        return None


def start_ticks(pid: int) -> int | None:
    info = read_stat(pid)
    return info.start_ticks if info else None


def is_same_process(pid: int, ticks: int | None) -> bool:
    """True when ``pid`` is alive (not a zombie) and started at ``ticks``: guards PID reuse."""
    info = read_stat(pid)
    return info is not None and info.state != "Z" and (ticks is None or info.start_ticks == ticks)


def snapshot() -> dict[int, ProcInfo]:
    table: dict[int, ProcInfo] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = read_stat(int(entry))
            if info is not None:
                table[info.pid] = info
    return table


def index_children(table: dict[int, ProcInfo]) -> dict[int, list[ProcInfo]]:
    children: dict[int, list[ProcInfo]] = {}
    for info in table.values():
        children.setdefault(info.ppid, []).append(info)
    return children


def descendants(root: int, children: dict[int, list[ProcInfo]]) -> list[ProcInfo]:
    found: list[ProcInfo] = []
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            found.append(child)
            stack.append(child.pid)
    return found


class Table:
    """One reading of /proc, indexed by parent and by session/group leader."""

    def __init__(self, table: dict[int, ProcInfo]) -> None:
        self.table = table
        self.children = index_children(table)
        self.led: dict[int, list[ProcInfo]] = {}
        for info in table.values():
            self.led.setdefault(info.session, []).append(info)
            if info.pgrp != info.session:
                self.led.setdefault(info.pgrp, []).append(info)

    def members(self, root: int) -> list[ProcInfo]:
        """Descendants of ``root`` plus anything still in its session or group (orphans
        that were re-parented keep those)."""
        found = {p.pid: p for p in descendants(root, self.children)}
        for info in self.led.get(root, ()):
            if info.pid != root:
                found.setdefault(info.pid, info)
        return [p for p in found.values() if p.state != "Z"]


_shared: tuple[float, Table] | None = None
SHARED_FOR = 0.05  # seconds a reading serves the stops that start together


def shared_table(*, fresh: bool = False) -> Table:
    """A reading of /proc shared by the tree kills that start at the same moment (a
    `stop all` of a thousand processes reads /proc once, not a thousand times)."""
    global _shared
    now = time.monotonic()
    if fresh or _shared is None or now - _shared[0] > SHARED_FOR:
        _shared = (now, Table(snapshot()))
    return _shared[1]


def tree_members(root: int, table: dict[int, ProcInfo]) -> list[ProcInfo]:
    return Table(table).members(root)


def send(pid: int, sig: signal.Signals, *, group: bool = False) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def open_pidfd(info: ProcInfo) -> int | None:
    try:
        fd = os.pidfd_open(info.pid)
    except OSError:
        return None
    # Between the /proc read and pidfd_open the PID may have been reused.
    if not is_same_process(info.pid, info.start_ticks):
        os.close(fd)
        return None
    return fd


async def wait_pidfds(fds: list[int], timeout: float) -> list[int]:
    """Wait until every pidfd reports its process gone; return those still alive."""
    if not fds:
        return []
    loop = asyncio.get_running_loop()
    pending = set(fds)
    done = asyncio.Event()

    def on_ready(fd: int) -> None:
        loop.remove_reader(fd)
        pending.discard(fd)
        if not pending:
            done.set()

    for fd in fds:
        loop.add_reader(fd, on_ready, fd)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), timeout)
    finally:
        for fd in pending:
            loop.remove_reader(fd)
    return sorted(pending)


def _pidfd_signal(fd: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
        signal.pidfd_send_signal(fd, sig)


async def kill_tree(root: int, exited: asyncio.Event, sig: signal.Signals, timeout: float) -> bool:
    """Signal ``root`` and every member of its tree once; after ``timeout`` SIGKILL whatever
    is left. Descendants are signalled through pidfds, so a reused PID is never hit.
    Returns True when the root has exited (``exited`` set by its owner) and no member of
    the tree is alive; False only if something survived SIGKILL for 5 s."""
    readings = shared_table()
    if root not in readings.table:  # the shared reading is older than this process
        readings = shared_table(fresh=True)
    table = readings.table
    members = readings.members(root)
    # What the root started since that reading: its children links are read now.
    known = {m.pid for m in members}
    members += [
        m for m in tree(root) or () if m.pid != root and m.pid not in known and m.state != "Z"
    ]
    fds: dict[int, int] = {}
    for member in members:
        fd = open_pidfd(member)
        if fd is not None:
            fds[member.pid] = fd
    root_info = table.get(root)
    leads_group = root_info is not None and root_info.pgrp == root
    try:
        # One signal per process: the group (root included) when root leads it, then the
        # descendants that left the group.
        if leads_group:
            send(root, sig, group=True)
        else:
            send(root, sig)
        for member in members:
            if member.pid in fds and (member.pgrp != root or not leads_group):
                _pidfd_signal(fds[member.pid], sig)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(exited.wait(), timeout)
        alive = await wait_pidfds(list(fds.values()), max(0.0, deadline - loop.time()))
        if exited.is_set() and not alive:
            return True
        # Escalate: the group, the root, everything found before and anything new since.
        send(root, signal.SIGKILL, group=True)
        if not exited.is_set():
            send(root, signal.SIGKILL)
        for fd in alive:
            _pidfd_signal(fd, signal.SIGKILL)
        for member in tree_members(root, snapshot()):
            if member.pid not in fds:
                fd = open_pidfd(member)
                if fd is not None:
                    fds[member.pid] = fd
                    _pidfd_signal(fd, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(exited.wait(), 5.0)
        left = await wait_pidfds(list(fds.values()), 5.0)
        return exited.is_set() and not left
    finally:
        for fd in fds.values():
            os.close(fd)


def tagged_sessions(home: str, table: dict[int, ProcInfo]) -> dict[int, int]:
    """Session leaders started by a daemon of ``home`` (their environment holds
    ``PMDAEMON_HOME=home`` and a ``PMDAEMON_ID``): PID -> process id. Only this user's
    processes can be read, which are the only ones a daemon of this user starts."""
    needle = f"PMDAEMON_HOME={home}".encode()
    found: dict[int, int] = {}
    for info in table.values():
        if info.pid != info.session or info.pid == os.getpid():
            continue
        try:
            with open(f"/proc/{info.pid}/environ", "rb") as f:
                variables = f.read().split(b"\0")
        except OSError:
            continue
        if needle not in variables:
            continue
        for variable in variables:
            if variable.startswith(b"PMDAEMON_ID="):
                with contextlib.suppress(ValueError):
                    found[info.pid] = int(variable[12:])
    return found


def has_ancestor(pid: int, ancestors: set[int], table: dict[int, ProcInfo]) -> bool:
    seen = 0
    info = table.get(pid)
    while info is not None and info.ppid > 1 and seen < 4096:
        if info.ppid in ancestors:
            return True
        info = table.get(info.ppid)
        seen += 1
    return False


async def kill_stray(pid: int, ticks: int | None) -> None:
    """SIGKILL a process that is not our child, and its tree; wait until it is gone."""
    if not is_same_process(pid, ticks):
        return
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return
    loop = asyncio.get_running_loop()
    exited = asyncio.Event()
    loop.add_reader(fd, exited.set)
    try:
        await kill_tree(pid, exited, signal.SIGKILL, 1.0)
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def _children(pid: int) -> list[int] | None:
    """Children of every thread of ``pid`` (kernel's CONFIG_PROC_CHILDREN), or None when
    this kernel does not offer the file."""
    main = _read(f"/proc/{pid}/task/{pid}/children")
    if main is None:
        return None if os.path.exists(f"/proc/{pid}") else []
    found = [int(x) for x in main.split()]
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:  # children forked by other threads are listed under those threads
        if tid != str(pid):
            extra = _read(f"/proc/{pid}/task/{tid}/children")
            if extra:
                found += [int(x) for x in extra.split()]
    return found


def tree(root: int) -> list[ProcInfo] | None:
    """``root`` and its descendants, found by walking children links instead of reading
    all of /proc; None when the kernel cannot tell (use ``snapshot`` then)."""
    out: list[ProcInfo] = []
    stack = [root]
    seen: set[int] = set()
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        info = read_stat(pid)
        if info is None:
            continue
        out.append(info)
        children = _children(pid)
        if children is None:
            return None
        stack += children
    return out
