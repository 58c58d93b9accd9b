"""Restart on file changes (PM2's ``watch``), event driven with inotify: one inotify
descriptor for the whole daemon, one watch per directory (never per file), ignored
directories never entered, so a project with ``node_modules`` costs what its own sources
cost. A burst of changes (a ``git checkout``, a build) becomes one restart."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fnmatch
import logging
import os
import re
import struct
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("pmdaemon.watch")

IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_EXCL_UNLINK = 0x04000000
IN_ISDIR = 0x40000000
# What a change is: a file written and closed, created, removed, renamed, or touched.
MASK = (
    IN_ATTRIB
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
    | IN_DONT_FOLLOW
    | IN_EXCL_UNLINK
)
EVENT = struct.Struct("iIII")
# PM2's default when ignore_watch is not given (chokidar's /[\/\\]\.|node_modules/), and
# Python's bytecode caches, which an app writes into its own tree as it starts.
DEFAULT_IGNORED_NAMES = ("node_modules", "__pycache__")
REGEX_HINTS = re.compile(r"[\\^$|()+{]")
SETTLE = 0.1  # a burst ends after this long without a change
MAX_BURST = 2.0  # ... or this long after it began, whichever comes first


class Ignore:
    """Which paths (relative to the app's cwd) a watch passes over. An entry of
    ignore_watch is a path (``logs``, ``./tmp``: that path and all below it), a glob
    (``*.log``, matched against the whole path and each name in it), or a regular
    expression (PM2 documents them: ``\\.git``, ``^dist/``, searched in the path)."""

    def __init__(self, patterns: Iterable[str] | None, always: Iterable[str] = ()) -> None:
        self.default = patterns is None
        self.paths: list[str] = []
        self.globs: list[str] = []
        self.regexes: list[re.Pattern[str]] = []
        # absolute paths passed over with all below them (the daemon's home, the app's logs)
        self.always = tuple(os.path.realpath(p) for p in always)
        self.absolute: list[str] = []
        for entry in patterns or ():
            text = entry.strip()
            if text.startswith("./"):
                text = text[2:]
            if os.path.isabs(text) and not REGEX_HINTS.search(text):
                self.absolute.append(os.path.realpath(text))  # path.join(__dirname, ...)
                continue
            if REGEX_HINTS.search(text):
                with contextlib.suppress(re.error):
                    self.regexes.append(re.compile(text))
                    continue
            if any(c in text for c in "*?["):
                self.globs.append(text)
            else:
                self.paths.append(text.rstrip("/"))

    def __call__(self, rel: str, absolute: str) -> bool:
        if any(absolute == p or absolute.startswith(p + os.sep) for p in self.always):
            return True
        if any(absolute == p or absolute.startswith(p + os.sep) for p in self.absolute):
            return True
        names = rel.split("/")
        if self.default:
            return any(
                (n.startswith(".") and n not in (".", "..")) or n in DEFAULT_IGNORED_NAMES
                for n in names
            )
        for path in self.paths:
            if rel == path or rel.startswith(path + "/") or path in names:
                return True
        for glob in self.globs:
            bare = glob[3:] if glob.startswith("**/") else glob  # **/*.log: a.log too
            if fnmatch.fnmatchcase(rel, glob) or any(fnmatch.fnmatchcase(n, bare) for n in names):
                return True
        return any(regex.search(rel) for regex in self.regexes)


class WatchLimit(OSError):
    pass


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.inotify_init1.argtypes = [ctypes.c_int]
    libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    libc.inotify_rm_watch.argtypes = [ctypes.c_int, ctypes.c_int]
    return libc


@dataclass(eq=False)
class TreeWatch:
    """The watch of one app: its roots (directories, or single files), its ignore rules,
    and what to call with the changed path (relative to ``base``)."""

    base: Path
    roots: tuple[str, ...]
    ignore: Ignore
    on_change: Callable[[str], None]
    problem: str | None = None  # why part of the tree is not watched
    dirs: set[int] = field(default_factory=set)
    files: dict[str, set[str]] = field(default_factory=dict)  # dir → names, for file roots
    walked: set[str] = field(default_factory=set)  # directories of the directory roots
    root_dirs: set[str] = field(default_factory=set)
    lost: bool = False  # a root went away: the watch must be made again

    def __post_init__(self) -> None:
        # One spelling of every path (a symlinked cwd, /srv/current -> releases/r1)
        self.base = Path(os.path.realpath(self.base))

    def rel(self, path: str) -> str:
        rel = os.path.relpath(path, self.base)
        return "." if rel == "." else rel

    def wants(self, directory: str, name: str) -> bool:
        names = self.files.get(directory)
        if names is not None and name not in names and directory not in self.walked:
            return False
        path = os.path.join(directory, name) if name else directory
        return not self.ignore(self.rel(path), path)


class Inotify:
    """The daemon's one inotify descriptor, shared by every TreeWatch."""

    def __init__(self) -> None:
        self._libc = _libc()
        fd = self._libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        self.fd = fd
        self.paths: dict[int, str] = {}  # wd → directory
        self.wds: dict[str, int] = {}
        self.users: dict[int, set[TreeWatch]] = {}
        self.watches: set[TreeWatch] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        asyncio.get_running_loop().add_reader(fd, self._read)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.fd)
        os.close(self.fd)
        self.watches.clear()

    # -- watches --------------------------------------------------------------------------

    def _add(self, directory: str) -> int:
        wd = self._libc.inotify_add_watch(self.fd, os.fsencode(directory), MASK)
        if wd < 0:
            err = ctypes.get_errno()
            if err == errno.ENOSPC:
                raise WatchLimit(err, "the system's inotify watch limit is reached")
            raise OSError(err, os.strerror(err))
        return int(wd)

    def _subscribe(self, watch: TreeWatch, directory: str) -> bool:
        try:
            wd = self._add(directory)
        except WatchLimit:
            limit = Path("/proc/sys/fs/inotify/max_user_watches")
            shown = limit.read_text().strip() if limit.exists() else "?"
            watch.problem = (
                f"not all of the tree is watched: the system's inotify watch limit "
                f"(fs.inotify.max_user_watches = {shown}) is reached"
            )
            return False
        except OSError:
            return True  # gone or unreadable: nothing to watch there
        self.paths[wd] = directory
        self.wds[directory] = wd
        self.users.setdefault(wd, set()).add(watch)
        watch.dirs.add(wd)
        return True

    async def watch(self, watch: TreeWatch) -> None:
        """Watch every directory of the roots that the rules do not pass over."""
        self.watches.add(watch)
        directories: list[str] = []
        for root in watch.roots:
            path = os.path.realpath(os.path.join(watch.base, root))
            if os.path.isdir(path):
                watch.root_dirs.add(path)
                found = await asyncio.to_thread(_walk, path, watch)
                watch.walked.update(found)
                directories += found
            else:
                parent, name = os.path.split(path)
                watch.files.setdefault(parent, set()).add(name)
                directories.append(parent)
        await self._subscribe_all(watch, directories)

    async def _subscribe_all(self, watch: TreeWatch, directories: list[str]) -> None:
        for directory in directories:
            if watch not in self.watches or not self._subscribe(watch, directory):
                break

    async def _add_tree(self, watch: TreeWatch, top: str) -> None:
        """A directory that appeared in a watched tree: walked in a thread (a big tree
        moved in must not stall the daemon), then watched."""
        found = await asyncio.to_thread(_walk, top, watch)
        if watch in self.watches:
            watch.walked.update(found)
            await self._subscribe_all(watch, found)

    def unwatch(self, watch: TreeWatch) -> None:
        self.watches.discard(watch)
        for wd in list(watch.dirs):
            self._release(watch, wd)

    def _release(self, watch: TreeWatch, wd: int) -> None:
        watch.dirs.discard(wd)
        users = self.users.get(wd)
        if users is None:
            return
        users.discard(watch)
        if not users:
            self._forget(wd)
            self._libc.inotify_rm_watch(self.fd, wd)

    def _forget(self, wd: int) -> None:
        self.users.pop(wd, None)
        directory = self.paths.pop(wd, None)
        if directory is not None and self.wds.get(directory) == wd:
            del self.wds[directory]

    # -- events ---------------------------------------------------------------------------

    def _read(self) -> None:
        try:
            data = os.read(self.fd, 256 * 1024)
        except BlockingIOError:
            return
        offset = 0
        while offset + EVENT.size <= len(data):
            wd, mask, _, size = EVENT.unpack_from(data, offset)
            raw = data[offset + EVENT.size : offset + EVENT.size + size]
            offset += EVENT.size + size
            self._event(wd, mask, os.fsdecode(raw.rstrip(b"\0")))

    def _event(self, wd: int, mask: int, name: str) -> None:
        if mask & IN_Q_OVERFLOW:  # events were lost: walk every tree again
            for watch in list(self.watches):
                watch.on_change("(more changes than the kernel queues: some unnamed)")
                for root in watch.root_dirs:
                    self._spawn(self._add_tree(watch, root))
            return
        directory = self.paths.get(wd)
        if directory is None:
            return
        if mask & IN_IGNORED:  # the directory is gone
            for watch in self.users.get(wd, set()):
                watch.dirs.discard(wd)
                if directory in watch.root_dirs:
                    watch.lost = True
                    watch.problem = (
                        f"{watch.rel(directory)} was removed: it is watched again from the "
                        "next start of the app"
                    )
            self._forget(wd)
            return
        path = os.path.join(directory, name) if name else directory
        if mask & IN_MOVE_SELF or (mask & IN_ISDIR and mask & IN_MOVED_FROM):
            self._release_under(directory if mask & IN_MOVE_SELF else path)
        for watch in list(self.users.get(wd, ())):
            if not watch.wants(directory, name):
                continue
            if mask & IN_ISDIR and mask & (IN_CREATE | IN_MOVED_TO) and directory in watch.walked:
                self._spawn(self._add_tree(watch, path))
            if mask & IN_MOVE_SELF and directory in watch.root_dirs:
                watch.lost = True
                watch.problem = (
                    f"{watch.rel(directory)} was moved away: it is watched again from the "
                    "next start of the app"
                )
            watch.on_change(watch.rel(path))

    async def settled(self) -> None:
        """Returns once the directories that appeared so far are watched."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _release_under(self, top: str) -> None:
        """A directory moved away: its watches (and those below it) no longer watch the
        tree's paths, whatever they now are."""
        for wd, directory in list(self.paths.items()):
            if directory == top or directory.startswith(top + os.sep):
                for watch in list(self.users.get(wd, ())):
                    watch.walked.discard(directory)
                    self._release(watch, wd)

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("watching a new directory failed: %s", task.exception())


def _walk(top: str, watch: TreeWatch) -> list[str]:
    """``top`` and the directories below it that ``watch`` does not pass over (symbolic
    links are not followed, so a link loop cannot make this endless)."""
    found = [top]
    stack = [top]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    try:
                        is_dir = entry.is_dir(follow_symlinks=False)
                    except OSError:
                        continue
                    if is_dir and not watch.ignore(watch.rel(entry.path), entry.path):
                        found.append(entry.path)
                        stack.append(entry.path)
        except OSError:
            continue
    return found


class Debounce:
    """Calls ``fire(path)`` once per burst of changes: after SETTLE seconds without one
    (at most MAX_BURST after the first), plus ``delay`` (PM2's watch_delay)."""

    def __init__(self, delay: float, fire: Callable[[str], None]) -> None:
        self.delay = delay
        self.fire = fire
        self._first: str | None = None
        self._began = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def __call__(self, path: str) -> None:
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        if self._first is None:
            self._first, self._began = path, now
        if self._timer is not None:
            self._timer.cancel()
        wait = min(SETTLE, max(0.0, self._began + MAX_BURST - now))
        self._timer = loop.call_later(wait + self.delay, self._done)

    def _done(self) -> None:
        path, self._first, self._timer = self._first, None, None
        if path is not None:
            self.fire(path)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._first = None, None
