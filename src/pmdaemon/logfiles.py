"""Reading process log files: the last N lines without reading the whole file, and
following a file as it grows (or is truncated or replaced)."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import struct
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

CHUNK = 64 * 1024
MAX_LINE = 64 * 1024
MAX_TAIL_BYTES = 8 * 1024 * 1024


def tail(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of ``path``, reaching into its last rotated generation
    (``path.1``) when the current file holds fewer."""
    return tail_at(path, lines)[0]


def tail_at(path: Path, lines: int, max_bytes: int = MAX_TAIL_BYTES) -> tuple[list[str], int]:
    """``tail`` plus the offset in the current file it read up to, for a follow that
    starts there."""
    found, end = _tail_one(path, lines, max_bytes)
    if len(found) < lines:
        older, _ = _tail_one(Path(f"{path}.1"), lines - len(found), max_bytes)
        found = older + found
    return found, end


def _tail_one(path: Path, lines: int, max_bytes: int) -> tuple[list[str], int]:
    """Reads backwards in blocks, at most ``max_bytes``: a file without newlines costs no
    more."""
    try:
        with open(path, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            blocks: list[bytes] = []
            pos, newlines, read = end, 0, 0
            while lines > 0 and pos > 0 and newlines <= lines and read < max_bytes:
                step = min(CHUNK, pos, max_bytes - read)
                pos -= step
                f.seek(pos)
                block = f.read(step)
                blocks.append(block)
                newlines += block.count(b"\n")
                read += len(block)
    except OSError:
        return [], 0
    if lines <= 0 or not blocks:
        return [], end
    text = b"".join(reversed(blocks)).decode("utf-8", errors="replace")
    if text.endswith("\n"):
        text = text[:-1]
    if not text:
        return [], end
    return text.split("\n")[-lines:], end


async def follow(
    path: Path, offset: int | None = None, poll_interval: float = 0.1
) -> AsyncIterator[str]:
    """Yield lines appended to ``path`` after ``offset`` (default: its end now). Survives
    truncation (flush) and replacement (rotation): the old file is read to its end before
    the new one is opened, so no line written before a rotation is missed."""
    f, inode = _open(path)
    pos = 0
    if f is not None:
        size = os.fstat(f.fileno()).st_size
        pos = size if offset is None or offset > size else offset
    pending = b""
    changed = _watcher().watch(str(path.parent))
    try:
        while True:
            if changed is not None:
                changed.clear()  # before looking: a write from now on sets it again
            if f is not None:
                size = os.fstat(f.fileno()).st_size
                if size < pos:  # emptied by a flush: start over at its beginning
                    pos, pending = 0, b""
                if size > pos:
                    f.seek(pos)
                    chunk = f.read(min(size - pos, READ_STEP))
                    pos += len(chunk)
                    pending += chunk
                    *complete, pending = pending.split(b"\n")
                    for raw in complete:
                        yield raw.decode("utf-8", errors="replace")
                    if len(pending) > MAX_LINE:
                        yield pending.decode("utf-8", errors="replace")
                        pending = b""
                    continue
            if _inode(path) != inode:  # rotated or re-created; the old one is read out
                if f is not None:
                    f.close()
                f, inode = _open(path)
                pos = 0
                continue
            if changed is None:
                await asyncio.sleep(poll_interval)
            else:  # woken by inotify at once; the timeout is only a safety net
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), SAFETY_POLL)
    finally:
        if changed is not None:
            _watcher().unwatch(str(path.parent), changed)
        if f is not None:
            f.close()


# -- inotify: followers wake when their directory changes, instead of polling ---------------

IN_MODIFY, IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x2, 0x40, 0x80, 0x100, 0x200
IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
SAFETY_POLL = 1.0
_EVENT = struct.Struct("iIII")


class Watcher:
    """One inotify instance per event loop (the kernel allows a user 128 by default), one
    watch per directory, shared by every follower of a file in it."""

    def __init__(self) -> None:
        self.fd = -1
        self.wds: dict[int, str] = {}
        self.dirs: dict[str, int] = {}
        self.waiters: dict[str, set[asyncio.Event]] = {}
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            self._add = libc.inotify_add_watch
            self._add.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
            self._rm = libc.inotify_rm_watch
            self._rm.argtypes = [ctypes.c_int, ctypes.c_int]
            fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        except (OSError, AttributeError):
            return
        if fd < 0:
            return
        self.fd = fd
        loop = asyncio.get_running_loop()
        loop.add_reader(fd, self._read)
        weakref.finalize(loop, os.close, fd)  # the instance goes with its loop

    def watch(self, directory: str) -> asyncio.Event | None:
        """An event set whenever a file in ``directory`` changes; None: poll instead."""
        if self.fd < 0:
            return None
        if directory not in self.dirs:
            mask = IN_MODIFY | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
            wd = self._add(self.fd, os.fsencode(directory), mask)
            if wd < 0:
                return None
            self.dirs[directory] = wd
            self.wds[wd] = directory
        event = asyncio.Event()
        self.waiters.setdefault(directory, set()).add(event)
        return event

    def unwatch(self, directory: str, event: asyncio.Event) -> None:
        waiters = self.waiters.get(directory)
        if waiters is None:
            return
        waiters.discard(event)
        if not waiters:
            del self.waiters[directory]
            wd = self.dirs.pop(directory, None)
            if wd is not None:
                self.wds.pop(wd, None)
                self._rm(self.fd, wd)

    def _read(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except (BlockingIOError, InterruptedError):
            return
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, _mask, _cookie, length = _EVENT.unpack_from(data, offset)
            offset += _EVENT.size + length
            for event in self.waiters.get(self.wds.get(wd, ""), ()):
                event.set()


_watchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Watcher] = (
    weakref.WeakKeyDictionary()
)


def _watcher() -> Watcher:
    loop = asyncio.get_running_loop()
    watcher = _watchers.get(loop)
    if watcher is None:
        watcher = _watchers[loop] = Watcher()
    return watcher


READ_STEP = 1024 * 1024


def _open(path: Path) -> tuple[BinaryIO | None, tuple[int, int] | None]:
    try:
        f = open(path, "rb")  # noqa: SIM115 (kept open by follow)
    except OSError:
        return None, None
    st = os.fstat(f.fileno())
    return f, (st.st_dev, st.st_ino)


def _inode(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino
