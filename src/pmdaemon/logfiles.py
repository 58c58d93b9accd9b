"""Reading process log files: the last N lines without reading the whole file, and
following a file as it grows (or is truncated or replaced)."""

from __future__ import annotations

import asyncio
import os
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
    try:
        while True:
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
            await asyncio.sleep(poll_interval)
    finally:
        if f is not None:
            f.close()


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
