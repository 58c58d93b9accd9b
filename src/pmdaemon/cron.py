"""Cron expressions as PM2's ``cron_restart`` takes them (the croner library's syntax):
five fields (minute hour day-of-month month day-of-week) or six with seconds first; ``*``,
``?``, lists, ranges, steps (``*/5``, ``1-30/2``), month and weekday names (``JAN``,
``mon-fri``), 0 or 7 for Sunday, ``L`` for the last day of the month, and the nicknames
``@yearly`` ``@monthly`` ``@weekly`` ``@daily`` ``@hourly``. As in croner 4 (the version
PM2 pins), a day must match both day fields (``0 0 1-7 * 1``: the first Monday of each
month), where Vixie cron takes either. Times are local."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
WEEKDAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
# name, lowest, highest, names (numbered from the lowest value)
FIELDS = (
    ("second", 0, 59, None),
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day of month", 1, 31, None),
    ("month", 1, 12, MONTHS),
    ("day of week", 0, 7, WEEKDAYS),
)
FORMS = (
    "5 fields (minute hour day month weekday) or 6 with seconds first, e.g. '0 3 * * *' or "
    "'*/10 * * * * *'"
)
SEARCH_YEARS = 8  # 29 February on a Monday exists within any 28 years; 8 covers leap days


class CronError(ValueError):
    """Why an expression is not one (a sentence without the expression itself)."""


@dataclass(frozen=True)
class Cron:
    text: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 is Sunday
    last_day: bool  # L in the day-of-month field
    any_day: bool  # the day-of-month field is * (or ?)
    any_weekday: bool

    def day_matches(self, day: dt.date) -> bool:
        in_month = day.day in self.days or (self.last_day and (day + dt.timedelta(1)).day == 1)
        weekday = (day.weekday() + 1) % 7
        in_week = weekday in self.weekdays
        return in_month and in_week

    def next_after(self, when: dt.datetime) -> dt.datetime | None:
        """The first time strictly after ``when`` (a naive local time) that matches, or None
        when none comes within the next years (e.g. 30 February)."""
        t = when.replace(microsecond=0) + dt.timedelta(seconds=1)
        end = when + dt.timedelta(days=366 * SEARCH_YEARS)
        while t <= end:
            if t.month not in self.months:
                year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
                t = dt.datetime(year, month, 1)
                continue
            if not self.day_matches(t.date()):
                t = dt.datetime(t.year, t.month, t.day) + dt.timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + dt.timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t = t.replace(second=0) + dt.timedelta(minutes=1)
                continue
            if t.second not in self.seconds:
                t += dt.timedelta(seconds=1)
                continue
            return t
        return None


def parse(text: str) -> Cron:
    """The expression, or CronError saying which field is wrong and what is accepted."""
    written = text.strip()
    expanded = NICKNAMES.get(written.lower(), written)
    if expanded.startswith("@"):
        raise CronError(
            f"unknown nickname {written!r}: expected one of {', '.join(sorted(NICKNAMES))}"
        )
    parts = expanded.split()
    if len(parts) == 5:
        parts = ["0", *parts]
    if len(parts) != 6:
        raise CronError(f"it has {len(parts)} field(s): expected {FORMS}")
    sets: list[frozenset[int]] = []
    last_day = False
    for part, (name, low, high, names) in zip(parts, FIELDS, strict=True):
        if name == "day of month" and "L" in part.upper().split(","):
            last_day = True
            part = ",".join(p for p in part.split(",") if p.upper() != "L") or "L"
            if part == "L":
                sets.append(frozenset())
                continue
        sets.append(_field(part, name, low, high, names))
    weekdays = frozenset(0 if d == 7 else d for d in sets[5])
    return Cron(
        text=written,
        seconds=sets[0],
        minutes=sets[1],
        hours=sets[2],
        days=sets[3],
        months=sets[4],
        weekdays=weekdays,
        last_day=last_day,
        any_day=parts[3] in ("*", "?"),
        any_weekday=parts[5] in ("*", "?"),
    )


def _field(part: str, name: str, low: int, high: int, names: list[str] | None) -> frozenset[int]:
    values: set[int] = set()
    for item in part.split(","):
        if not item:
            raise CronError(f"the {name} field {part!r} has an empty item")
        body, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"the {name} field has a bad step {item!r}: expected */N, N ≥ 1")
            step = int(step_text)
        if body in ("*", "?"):
            first, last = low, high
        elif "-" in body:
            a, _, b = body.partition("-")
            first, last = _value(a, name, low, high, names), _value(b, name, low, high, names)
            if first > last:
                raise CronError(f"the {name} field has a reversed range {item!r}")
        else:
            first = _value(body, name, low, high, names)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return frozenset(values)


def _value(text: str, name: str, low: int, high: int, names: list[str] | None) -> int:
    if names is not None and text.upper() in names:
        return names.index(text.upper()) + low
    if text.isascii() and text.isdigit() and low <= int(text) <= high:
        return int(text)
    named = f", or {names[0]}-{names[-1]}" if names else ""
    raise CronError(f"the {name} field has {text!r}: expected {low}-{high}{named}")
