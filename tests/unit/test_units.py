from __future__ import annotations

import pytest

from pmdaemon.errors import InvalidInput
from pmdaemon.units import (
    format_bytes,
    format_duration,
    format_uptime,
    parse_duration,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("5s", 5.0),
        ("1m", 60.0),
        ("2h", 7200.0),
        ("1.5s", 1.5),
        ("250", 0.25),
        (1600, 1.6),
        (0, 0.0),
        (".5s", 0.5),
        (" 3s ", 3.0),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text, "d") == pytest.approx(seconds)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "abc",
        "5 s s",
        "-5s",
        "1x",
        "nan",
        "inf",
        True,
        None,
        [1],
        "1e3s",
        "9999999h",
        float("nan"),
    ],
)
def test_bad_durations_name_field_value_and_forms(bad: object) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_duration(bad, "min_uptime")
    assert "min_uptime" in err.value.message and "500ms" in err.value.message


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512K", 512 * 1024),
        ("100M", 100 * 1024**2),
        ("1G", 1024**3),
        ("1.5G", int(1.5 * 1024**3)),
        ("100mb", 100 * 1024**2),
        ("2KiB", 2048),
        ("4096", 4096),
        (4096, 4096),
        ("1gb", 1024**3),
    ],
)
def test_sizes(text: object, size: int) -> None:
    assert parse_size(text, "s") == size


@pytest.mark.parametrize("bad", ["", "M", "1X", "-1M", "0", "ib", "1.2.3M", True, 1.5, None])
def test_bad_sizes(bad: object) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_size(bad, "max_memory_restart")
    assert "max_memory_restart" in err.value.message and "100M" in err.value.message


def test_formatting() -> None:
    assert format_uptime(8130) == "2h 15m 30s"
    assert format_uptime(45) == "45s"
    assert format_uptime(90061) == "1d 1h"
    assert format_uptime(-3) == "0s"
    assert format_duration(1.6) == "1.6s"
    assert format_duration(0.5) == "500ms"
    assert format_duration(60) == "1m"
    assert format_duration(7200) == "2h"
    assert format_bytes(512) == "512 B"
    assert format_bytes(20 * 1024 * 1024 + 512 * 1024) == "20.5 MiB"
