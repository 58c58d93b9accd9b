"""Parsers and formatters for the human units shared by every surface: durations, sizes.

Durations are float seconds inside the program; the strings (``500ms``, ``1.5s``) exist only
at the edges.
"""

from __future__ import annotations

import math
import re
import reprlib
import time

from pmdaemon.errors import InvalidInput

_DURATION = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h)?")
# Milliseconds are divided, not multiplied by 0.001, so "43ms" is exactly 43 / 1000.
_DURATION_SCALE = {"ms": -1000.0, "s": 1.0, "m": 60.0, "h": 3600.0, None: -1000.0}
_SIZE = re.compile(r"(\d+(?:\.\d+)?|\.\d+)([kmgt]?)(i?b)?", re.IGNORECASE)
_SIZE_SCALE = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}

DURATION_FORMS = "a duration like 500ms, 5s, 1.5s, 1m or 2h (a bare integer means milliseconds)"
SIZE_FORMS = "a size like 512K, 100M, 1G or 1.5GB (a bare integer means bytes)"
MAX_DURATION = 366 * 24 * 3600.0


def parse_duration(value: object, field: str) -> float:
    """Return seconds for ``value`` (a duration string or a number of milliseconds)."""
    if isinstance(value, bool):
        raise _bad(field, value, DURATION_FORMS)
    if isinstance(value, int | float):
        seconds = float(value) / 1000.0
    elif isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if match is None:
            raise _bad(field, value, DURATION_FORMS)
        scale = _DURATION_SCALE[match.group(2)]
        number = float(match.group(1))
        seconds = number / -scale if scale < 0 else number * scale
    else:
        raise _bad(field, value, DURATION_FORMS)
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_DURATION:
        raise _bad(field, value, DURATION_FORMS + ", at most a year")
    return seconds


def parse_size(value: object, field: str) -> int:
    """Return bytes for ``value`` (a 1024-based size string or a number of bytes)."""
    if isinstance(value, bool):
        raise _bad(field, value, SIZE_FORMS)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 1e9 in a YAML or JSON file is a whole number of bytes
    if isinstance(value, int):
        if not 1 <= value <= 2**62:
            raise _bad(field, value, SIZE_FORMS + ", greater than zero")
        return value
    elif isinstance(value, str):
        match = _SIZE.fullmatch(value.strip())
        if match is None or (
            match.group(3) and match.group(3).lower() == "ib" and not match.group(2)
        ):
            raise _bad(field, value, SIZE_FORMS)
        if match.group(2) and float(match.group(1)) < 0.001:
            raise _bad(field, value, SIZE_FORMS + ", at least 0.001 of its unit")
        size = float(match.group(1)) * _SIZE_SCALE[match.group(2).lower()]
    else:
        raise _bad(field, value, SIZE_FORMS)
    if not math.isfinite(size) or size < 1 or size > 2**62:
        raise _bad(field, value, SIZE_FORMS + ", greater than zero")
    return int(size)


def format_duration(seconds: float) -> str:
    """The shortest exact spelling that parse_duration reads back: ``500ms``, ``1.5s``,
    ``2m``, ``3h``, ``90.25s`` (never an exponent)."""
    if seconds < 1:
        return f"{_plain(seconds * 1000)}ms"
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{_plain(seconds)}s"


def _plain(number: float) -> str:
    return f"{number:.3f}".rstrip("0").rstrip(".")


def format_uptime(seconds: float) -> str:
    """Human uptime as PMDaemon shows it: ``2h 15m 30s``, ``3d 4h``, ``45s``."""
    total = int(max(seconds, 0))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def format_bytes(size: int) -> str:
    """1024-based, one decimal: ``12.3 MiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


_SHOWN = reprlib.Repr()
_SHOWN.maxstring = 60
_SHOWN.maxother = 60
_SHOWN.maxlong = 40
_SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxdict = _SHOWN.maxset = 4
_SHOWN.maxlevel = 2


MAX_SHOWN = 120


def shown(value: object) -> str:
    """A value as error messages quote it: short whatever its size or depth (reprlib bounds
    each level; a wide nest of long strings is cut as a whole), printable, on one line."""
    try:
        text = _SHOWN.repr(value)
    except (RecursionError, ValueError):
        return f"<{type(value).__name__}>"
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def shown_key(key: object, limit: int = 64) -> str:
    """A name or key that came from input, as one short line shows it: as written when it is
    printable and short, else quoted and cut like ``shown`` (control characters, a line break
    or an escape sequence must not reach a terminal raw)."""
    if isinstance(key, str) and key.isprintable() and len(key) <= limit:
        return key
    return shown(key)


def _bad(field: str, value: object, forms: str) -> InvalidInput:
    shown_value = shown(value)
    return InvalidInput(
        f"invalid {field} {shown_value}: expected {forms}",
        {"field": field, "value": shown_value},
    )


def format_timestamp(ts: float) -> str:
    """RFC 3339 in UTC with milliseconds: ``2026-11-28T03:19:52.608Z``."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))
    return f"{whole}.{int(ts % 1 * 1000):03d}Z"
