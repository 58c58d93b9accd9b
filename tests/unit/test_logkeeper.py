"""The log keeper's file side: rotation at line boundaries, partial lines, stamping, and
the timestamp formats (real files in a temporary directory; no pipes needed)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pmdaemon.logkeeper import MAX_LINE, LogFile, Source, flush_file
from pmdaemon.logstamp import (
    DEFAULT_FORMAT,
    StampFormatError,
    compile_format,
    pattern_of,
    render,
    split_stamp,
)


def generations(path: Path) -> list[Path]:
    rotated = sorted(path.parent.glob(path.name + ".*"), key=lambda p: -int(p.suffix[1:]))
    return [*rotated, path]


def feed(source: Source, data: bytes, now: float = 0.0) -> None:
    buf = bytearray(data)
    source.feed(buf, len(buf), now)


def test_rotation_cuts_between_lines_and_keeps_max_files(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    target = LogFile(str(path), max_size=100, max_files=3, stamp=None)
    lines = [f"{i:03d} {'y' * (i % 30)}\n".encode() for i in range(200)]
    target.write(b"".join(lines))
    files = generations(path)
    assert [p.name for p in files] == ["out.log.3", "out.log.2", "out.log.1", "out.log"]
    content = b"".join(p.read_bytes() for p in files)
    assert content.endswith(b"".join(lines[-5:]))
    assert b"".join(lines).endswith(content)  # the newest lines, whole and in order
    for p in files:
        data = p.read_bytes()
        assert len(data) <= 100 and data.endswith(b"\n")


def test_a_line_longer_than_a_file_gets_a_file_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    target = LogFile(str(path), max_size=10, max_files=5, stamp=None)
    target.write(b"short\n" + b"z" * 25 + b"\n" + b"tail\n")
    assert [p.read_bytes() for p in generations(path)] == [b"short\n", b"z" * 25 + b"\n", b"tail\n"]


def test_partial_lines_wait_for_their_end(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    source = Source(-1, LogFile(str(path), 1 << 20, 5, None), (0, 0))
    feed(source, b"one\ntw")
    assert path.read_bytes() == b"one\n"
    feed(source, b"o\nthr")
    assert path.read_bytes() == b"one\ntwo\n"
    source.drain_partial(now=0.5)  # not yet due
    assert path.read_bytes() == b"one\ntwo\n"
    source.drain_partial(now=5.0)  # a pause: written as it is
    assert path.read_bytes() == b"one\ntwo\nthr"
    feed(source, b"ee\n")
    assert path.read_bytes() == b"one\ntwo\nthree\n"
    feed(source, b"x" * (MAX_LINE + 1))  # an endless line is written in pieces
    assert path.stat().st_size == len(b"one\ntwo\nthree\n") + MAX_LINE + 1


def test_stamps_start_lines_only(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    source = Source(-1, LogFile(str(path), 1 << 20, 5, compile_format("HH:mm:ss")), (0, 0))
    feed(source, b"a\nb\npart")
    source.drain_partial(now=5.0)
    feed(source, b"ial\nc\n", now=5.0)
    lines = path.read_text().splitlines()
    stamp = re.compile(r"^\d\d:\d\d:\d\d: ")
    assert [stamp.sub("", x) for x in lines] == ["a", "b", "partial", "c"]
    assert all(stamp.match(x) for x in lines)


@settings(max_examples=60, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"-")), max_size=80),
    cuts=st.lists(st.integers(min_value=1, max_value=50), max_size=40),
)
def test_any_chunking_gives_every_line_once_and_whole(
    tmp_path_factory: pytest.TempPathFactory, lines: list[bytes], cuts: list[int]
) -> None:
    path = tmp_path_factory.mktemp("k") / "out.log"
    source = Source(-1, LogFile(str(path), 64, 1000, None), (0, 0))
    data = b"".join(line + b"\n" for line in lines)
    pos = 0
    for cut in [*cuts, len(data)]:
        if pos >= len(data):
            break
        feed(source, data[pos : pos + cut])
        pos += cut
    files = generations(path)
    assert b"".join(p.read_bytes() for p in files) == data
    for p in files:  # a file holds whole lines only, and at most 64 bytes unless one line
        content = p.read_bytes()
        assert not content or content.endswith(b"\n")
        assert len(content) <= 64 or content.count(b"\n") == 1


def test_flush_empties_the_file_and_removes_generations(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    target = LogFile(str(path), max_size=10, max_files=5, stamp=None)
    target.write(b"123456789\n" * 4)
    (tmp_path / "out.log.old").write_text("not ours")
    flush_file(str(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.log", "out.log.old"]
    assert path.read_bytes() == b""


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("YYYY-MM-DD HH:mm:ss", "2026-03-04 05:06:07"),
        ("YY/M/D H:m:s", "26/3/4 5:6:7"),
        ("DD.MM.YYYY [at] hh:mm A", "04.03.2026 at 05:06 AM"),
        ("YYYY-MM-DDTHH:mm:ss.SSS", "2026-03-04T05:06:07.250"),
        ("%Y%m%d %H%M%S", "20260304 050607"),
        ("X", str(int(time.mktime((2026, 3, 4, 5, 6, 7, 0, 0, -1))))),
    ],
)
def test_formats_render(fmt: str, expected: str) -> None:
    when = time.mktime((2026, 3, 4, 5, 6, 7, 0, 0, -1)) + 0.25
    assert render(compile_format(fmt), when) == expected


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("", "1 to 64 printable characters"),
        ("Y" * 65, "1 to 64 printable characters"),
        ("yyyy-mm-dd", "'y' is not a date token"),
        ("[never closed", "never closed"),
        ("just words", "'j' is not a date token"),
        ("[literal]", "no date or time token"),
        ("%Y %Q", "%Q is not a strftime directive"),
        ("tab\there", "printable"),
    ],
)
def test_bad_formats_say_why(fmt: str, message: str) -> None:
    with pytest.raises(StampFormatError, match=re.escape(message)):
        compile_format(fmt)


SPLIT_FORMATS = [
    DEFAULT_FORMAT,
    "YYYY-MM-DD HH:mm:ss Z",
    "YY/M/D h:m:s a",
    "DD.MM.YYYY [at] hh:mm A ZZ",
    "X",
    "x",
    "%Y-%m-%d %H:%M:%S",
    "%A %d %B %Y %H:%M:%S.%f %z %Z",
    "%c",
    "%F %T",
]


@settings(max_examples=200, deadline=None)
@given(
    fmt=st.sampled_from(SPLIT_FORMATS),
    when=st.floats(min_value=0, max_value=4e9),
    message=st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
)
def test_the_api_splits_off_exactly_the_stamp_the_keeper_wrote(
    fmt: str, when: float, message: str
) -> None:
    stamp = render(compile_format(fmt), when)
    assert split_stamp(pattern_of(fmt), f"{stamp}: {message}") == (stamp, message)


def test_lines_without_the_stamp_are_left_whole() -> None:
    pattern = pattern_of(DEFAULT_FORMAT)
    for line in ["plain", "", "12:30: not ours", "2026-03-04: half a stamp", "x" * 300]:
        assert split_stamp(pattern, line) == (None, line)
    assert split_stamp(None, "2026-03-04T05:06:07.250+00:00: no format") == (
        None,
        "2026-03-04T05:06:07.250+00:00: no format",
    )
