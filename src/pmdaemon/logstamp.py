"""Per-line log timestamps: `log_date_format` in moment.js style (what PM2 users write,
e.g. ``YYYY-MM-DD HH:mm:ss Z``) or as a strftime format (anything with a ``%``).

A format is compiled once, when the configuration is read, into a list of parts that the
log keeper renders for each chunk it writes. Only the standard library is imported: the log
keeper loads this module and must stay small."""

from __future__ import annotations

import datetime
import functools
import re
import time

DEFAULT_FORMAT = "YYYY-MM-DDTHH:mm:ss.SSSZ"
MAX_FORMAT = 64

# Longest first, so that "YYYY" is not read as two "YY".
TOKENS: tuple[str, ...] = (
    *("YYYY", "SSS", "YY", "MM", "DD", "HH", "hh", "mm", "ss", "ZZ"),
    *("M", "D", "H", "h", "m", "s", "A", "a", "Z", "X", "x"),
)
_SCAN = re.compile(r"\[[^\]]*\]|" + "|".join(TOKENS) + r"|[A-Za-z]|[^A-Za-z\[]+|\[")
LITERAL_LETTERS = {"T"}  # ISO 8601's separator, a literal in moment.js too
STRFTIME = set("aAbBcdefFgGhHIjmMnpsStTuUVwWxXyYzZ%")  # the directives glibc knows

Parts = list[list[str]]  # [["t", token] | ["l", literal text] | ["f", strftime format]]


class StampFormatError(ValueError):
    pass


def compile_format(fmt: str) -> Parts:
    """The parts of ``fmt``; StampFormatError says what is wrong in one sentence."""
    if not fmt or len(fmt) > MAX_FORMAT or not fmt.isprintable():
        raise StampFormatError(
            f"expected 1 to {MAX_FORMAT} printable characters, like {DEFAULT_FORMAT!r}"
        )
    if "%" in fmt:
        for directive in re.findall(r"%(.?)", fmt):
            if directive not in STRFTIME:
                raise StampFormatError(
                    f"%{directive} is not a strftime directive (use %Y %m %d %H %M %S %f %z ...)"
                )
        return [["f", fmt]]
    parts: Parts = []
    for piece in _SCAN.findall(fmt):
        if piece in TOKENS:
            parts.append(["t", piece])
        elif piece.startswith("[") and piece.endswith("]") and len(piece) >= 2:
            parts.append(["l", piece[1:-1]])
        elif piece == "[":
            raise StampFormatError("'[' opens literal text that is never closed with ']'")
        elif piece.isalpha() and piece not in LITERAL_LETTERS:
            raise StampFormatError(
                f"{piece!r} is not a date token; use YYYY MM DD HH mm ss SSS Z (moment.js "
                "style, [text] for literal text) or a strftime format with %"
            )
        else:
            parts.append(["l", piece])
    if not any(kind == "t" for kind, _ in parts):
        raise StampFormatError(f"it has no date or time token, like {DEFAULT_FORMAT!r}")
    return parts


def needs_milliseconds(parts: Parts) -> bool:
    return any(
        (kind == "t" and value in ("SSS", "x")) or (kind == "f" and "%f" in value)
        for kind, value in parts
    )


def _offset(seconds: int, colon: bool) -> str:
    sign = "-" if seconds < 0 else "+"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return f"{sign}{hours:02d}:{minutes:02d}" if colon else f"{sign}{hours:02d}{minutes:02d}"


def render(parts: Parts, now: float | None = None) -> str:
    now = time.time() if now is None else now
    lt = time.localtime(now)
    out: list[str] = []
    for kind, value in parts:
        if kind == "l":
            out.append(value)
        elif kind == "f":
            out.append(datetime.datetime.fromtimestamp(now).astimezone().strftime(value))
        else:
            out.append(_token(value, lt, now))
    return "".join(out)


def _token(token: str, lt: time.struct_time, now: float) -> str:
    hour12 = lt.tm_hour % 12 or 12
    match token:
        case "YYYY":
            return f"{lt.tm_year:04d}"
        case "YY":
            return f"{lt.tm_year % 100:02d}"
        case "MM":
            return f"{lt.tm_mon:02d}"
        case "M":
            return str(lt.tm_mon)
        case "DD":
            return f"{lt.tm_mday:02d}"
        case "D":
            return str(lt.tm_mday)
        case "HH":
            return f"{lt.tm_hour:02d}"
        case "H":
            return str(lt.tm_hour)
        case "hh":
            return f"{hour12:02d}"
        case "h":
            return str(hour12)
        case "mm":
            return f"{lt.tm_min:02d}"
        case "m":
            return str(lt.tm_min)
        case "ss":
            return f"{lt.tm_sec:02d}"
        case "s":
            return str(lt.tm_sec)
        case "SSS":
            return f"{int(now * 1000) % 1000:03d}"
        case "A":
            return "AM" if lt.tm_hour < 12 else "PM"
        case "a":
            return "am" if lt.tm_hour < 12 else "pm"
        case "Z":
            return _offset(lt.tm_gmtoff or 0, colon=True)
        case "ZZ":
            return _offset(lt.tm_gmtoff or 0, colon=False)
        case "X":
            return str(int(now))
        case _:  # "x"
            return str(int(now * 1000))


_TOKEN_PATTERNS = {
    **dict.fromkeys(("YY", "MM", "DD", "HH", "hh", "mm", "ss"), r"\d{2}"),
    **dict.fromkeys(("M", "D", "H", "h", "m", "s"), r"\d{1,2}"),
    "YYYY": r"\d{4}",
    "SSS": r"\d{3}",
    "A": "(?:AM|PM)",
    "a": "(?:am|pm)",
    "Z": r"[+-]\d{2}:\d{2}",
    "ZZ": r"[+-]\d{4}",
    "X": r"\d+",
    "x": r"\d+",
}
_STRFTIME_PATTERNS = {
    **dict.fromkeys("ymdHIMSCgUWV", r"\d{2}"),
    **dict.fromkeys("YG", r"\d{4}"),
    **dict.fromkeys("uw", r"\d"),
    **dict.fromkeys("aAbBhpZ", r"[^\s:]*"),
    "e": r"[ \d]\d",
    "j": r"\d{3}",
    "f": r"\d{6}",
    "z": r"[+-]\d{4}",
    "s": r"\d+",
    "F": r"\d{4}-\d{2}-\d{2}",
    "T": r"\d{2}:\d{2}:\d{2}",
    "R": r"\d{2}:\d{2}",
    "D": r"\d{2}/\d{2}/\d{2}",
    "n": "\n",
    "t": "\t",
    "%": "%",
}


def stamp_pattern(parts: Parts) -> re.Pattern[str]:
    """Matches a line the keeper stamped with ``parts``: group 1 the stamp, group 2 the
    line as the app wrote it."""
    out: list[str] = []
    for kind, value in parts:
        if kind == "l":
            out.append(re.escape(value))
        elif kind == "t":
            out.append(_TOKEN_PATTERNS[value])
        else:
            for literal, directive in re.findall(r"([^%]*)(?:%(.?))?", value):
                out.append(re.escape(literal))
                if directive:
                    out.append(_STRFTIME_PATTERNS.get(directive, ".+?"))
    return re.compile(f"({''.join(out)}): (.*)", re.DOTALL)


@functools.lru_cache(maxsize=64)
def pattern_of(fmt: str) -> re.Pattern[str]:
    return stamp_pattern(compile_format(fmt))


def split_stamp(pattern: re.Pattern[str] | None, line: str) -> tuple[str | None, str]:
    """(the stamp, the rest) of a stamped line; (None, line) for any other."""
    match = pattern.fullmatch(line) if pattern is not None else None
    return (match.group(1), match.group(2)) if match else (None, line)


class Stamper:
    """Renders the prefix of a chunk's lines, once per second unless it shows milliseconds."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.per_ms = needs_milliseconds(parts)
        self._second = -1
        self._prefix = b""

    def prefix(self, now: float) -> bytes:
        if self.per_ms:
            return render(self.parts, now).encode() + b": "
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = render(self.parts, now).encode() + b": "
        return self._prefix
