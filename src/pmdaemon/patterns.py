"""Regular expressions for bounded numbers, so that the JSON Schema of ecosystem files says
exactly what the field parsers accept ("a port from 1 to 65535", "at most a year of
milliseconds") instead of only "some digits". Pure functions of their bounds."""

from __future__ import annotations

DIGITS = r"(?:\d+(?:\.\d+)?|\.\d+)"  # how every parser writes a decimal number


def int_range(low: int, high: int) -> str:
    """A regex (no anchors) for the decimal integers from ``low`` to ``high``, written
    without leading zeros (0 is "0")."""
    if low > high:
        raise ValueError("empty range")
    parts: list[str] = []
    for length in range(len(str(low)), len(str(high)) + 1):
        first = max(low, 0 if length == 1 else 10 ** (length - 1))
        last = min(high, 10**length - 1)
        if first <= last:
            parts += _same_length(str(first), str(last))
    return "(?:" + "|".join(parts) + ")"


def _same_length(low: str, high: str) -> list[str]:
    if low == high:
        return [low]
    rest = len(low) - 1
    if low == "0" * len(low) and high == "9" * len(high):
        return [rf"\d{{{len(low)}}}" if len(low) > 1 else r"\d"]
    if rest == 0:
        return [f"[{low}-{high}]"]
    if low[0] == high[0]:
        return [low[0] + tail for tail in _same_length(low[1:], high[1:])]
    parts = [low[0] + tail for tail in _same_length(low[1:], "9" * rest)]
    if int(high[0]) - int(low[0]) > 1:
        parts.append(f"[{int(low[0]) + 1}-{int(high[0]) - 1}]" + rf"\d{{{rest}}}")
    parts += [high[0] + tail for tail in _same_length("0" * rest, high[1:])]
    return parts


def uint(low: int, high: int) -> str:
    """Integers from ``low`` to ``high``, leading zeros allowed (``int()`` reads them)."""
    body = int_range(max(low, 1), high) if high >= 1 else None
    zero = low == 0
    if body is None:
        return "0+"
    return f"(?:0*{body}|0+)" if zero else f"0*{body}"


def decimal_at_most(high: int) -> str:
    """Decimal numbers (as DIGITS writes them) from 0 to ``high`` (an integer >= 1)."""
    below = int_range(0, high - 1)
    return rf"(?:0*(?:{below}(?:\.\d+)?|{high}(?:\.0+)?)|\.\d+)"


def decimal_between(low: str, high: int) -> str:
    """Decimal numbers from ``low`` (``"0.001"``, ``"1"``, ``"1024"``: a power of ten
    below 1, or an integer) to ``high`` (an integer above it)."""
    if "." in low:  # 0.001 .. 1: a non-zero digit within the first places of the fraction
        zeros = len(low.split(".")[1]) - 1
        small = rf"0*\.0{{0,{zeros}}}[1-9]\d*|0+\.0{{0,{zeros}}}[1-9]\d*"
        return rf"(?:{decimal_between('1', high)}|{small})"
    start = int(low)
    body = int_range(start, high - 1)
    return rf"(?:0*(?:{body}(?:\.\d+)?|{high}(?:\.0+)?))"


def positive(number: str) -> str:
    """``number`` (a regex of decimals) restricted to values above zero."""
    return rf"(?=[^1-9]*[1-9]){number}"


def any_case(word: str) -> str:
    """``word`` in any mix of upper and lower case."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)
