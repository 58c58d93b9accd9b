"""PM2's cron_restart syntax (croner 4, as PM2 pins it): parsing and the next run time."""

from __future__ import annotations

import datetime as dt

import pytest

from pmdaemon import cron

T0 = dt.datetime(2026, 12, 2, 10, 30, 15)  # a Wednesday


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("* * * * * *", dt.datetime(2026, 12, 2, 10, 30, 16)),
        ("*/10 * * * * *", dt.datetime(2026, 12, 2, 10, 30, 20)),
        ("0 3 * * *", dt.datetime(2026, 12, 3, 3, 0)),
        ("@hourly", dt.datetime(2026, 12, 2, 11, 0)),
        ("@daily", dt.datetime(2026, 12, 3, 0, 0)),
        ("0 9 * * mon-fri", dt.datetime(2026, 12, 3, 9, 0)),
        ("0 9 * * 0", dt.datetime(2026, 12, 6, 9, 0)),
        ("0 9 * * 7", dt.datetime(2026, 12, 6, 9, 0)),  # 7 is Sunday too
        ("0 0 L * *", dt.datetime(2026, 12, 31, 0, 0)),
        ("0 0 1 JAN *", dt.datetime(2027, 1, 1, 0, 0)),
        ("15,45 10 * * *", dt.datetime(2026, 12, 2, 10, 45)),
        ("0 0 1-7 * 1", dt.datetime(2026, 12, 7, 0, 0)),  # both day fields: the first Monday
        ("0 0 29 2 *", dt.datetime(2028, 2, 29, 0, 0)),
    ],
)
def test_next_run(expression: str, expected: dt.datetime) -> None:
    assert cron.parse(expression).next_after(T0) == expected


def test_an_impossible_date_never_comes() -> None:
    assert cron.parse("0 0 30 2 *").next_after(T0) is None


@pytest.mark.parametrize(
    ("expression", "said"),
    [
        ("* * *", "it has 3 field(s)"),
        ("* * * * * * *", "it has 7 field(s)"),
        ("61 * * * *", "the minute field has '61': expected 0-59"),
        ("0 24 * * *", "the hour field has '24': expected 0-23"),
        ("*/0 * * * *", "bad step"),
        ("5-1 * * * *", "reversed range"),
        ("0 0 * * FOO", "the day of week field has 'FOO'"),
        ("@sometimes", "unknown nickname"),
        ("0 0 * * FRI#2", "the day of week field"),
    ],
)
def test_a_bad_expression_says_which_field(expression: str, said: str) -> None:
    with pytest.raises(cron.CronError) as err:
        cron.parse(expression)
    assert said in str(err.value)
