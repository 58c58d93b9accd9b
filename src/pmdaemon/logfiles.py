"""Reading process log files: the last N lines without reading the whole file, and
following a file as it grows (or is truncated or replaced)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

CHUNK = 64 * 1024
MAX_LINE = 64 * 1024
MAX_TAIL_BYTES = 8 * 1024 * 1024


def tail(path: Path, lines: int) -> list[str]:
    """The last ``lines`` complete or trailing lines of ``path`` (empty if missing)."""
    return tail_at(path, lines)[0]


def tail_at(path: Path, lines: int, max_bytes: int = MAX_TAIL_BYTES) -> tuple[list[str], int]:
    """``tail`` plus the file offset it read up to, for a follow that starts there. Reads
    backwards in blocks, at most ``max_bytes``: a file without newlines costs no more."""
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
    """Yield lines appended to ``path`` after ``offset`` (default: its end now); survives
    truncation and replacement."""
    size, inode = _stat(path)
    offset = size if offset is None else offset
    pending = b""
    while True:
        size, new_inode = _stat(path)
        if new_inode != inode or size < offset:
            offset, inode, pending = 0, new_inode, b""
        if size > offset:
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    chunk = f.read(size - offset)
            except OSError:
                chunk = b""
            offset += len(chunk)
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                yield raw.decode("utf-8", errors="replace")
            if len(pending) > MAX_LINE:
                yield pending.decode("utf-8", errors="replace")
                pending = b""
        else:
            await asyncio.sleep(poll_interval)


def _stat(path: Path) -> tuple[int, int | None]:
    try:
        st = os.stat(path)
    except OSError:
        return 0, None
    return st.st_size, st.st_ino
