from __future__ import annotations

from pmdaemon.cli.main import quote, split_script_args
from pmdaemon.cli.render import Painter, process_table
from pmdaemon.client import error_from
from pmdaemon.errors import PmdError, ProcessNotFound

VIEW = {
    "id": 3,
    "name": "web",
    "namespace": "default",
    "status": "online",
    "pid": 42,
    "port": None,
    "uptime": "5s",
    "restarts": 2,
    "cpu_usage": 1.25,
    "memory_usage": 2 * 1024 * 1024,
    "health_status": None,
}


def test_table_without_colour() -> None:
    text = process_table([VIEW], Painter(False))
    assert "\x1b[" not in text
    row = next(line for line in text.splitlines() if "web" in line)
    cells = [c.strip() for c in row.strip("│").split("│")]
    assert cells == ["3", "web", "default", "online", "42", "-", "5s", "2", "1.2%", "2.0 MiB", "-"]


def test_table_with_colour_marks_status() -> None:
    assert "\x1b[32monline" in process_table([VIEW], Painter(True))


def test_stopped_rows_show_dashes() -> None:
    row = dict(VIEW, status="stopped", pid=None)
    line = next(x for x in process_table([row], Painter(False)).splitlines() if "web" in x)
    assert "42" not in line and "2.0 MiB" not in line


def test_quote_and_script_args() -> None:
    assert quote("../x") == "..%2Fx"
    assert quote("é") == "%C3%A9"
    assert split_script_args(["start", "a", "--", "-x", "--"]) == (["start", "a"], ["-x", "--"])


def test_error_bodies_become_exceptions() -> None:
    exc = error_from(404, {"code": "PROCESS_NOT_FOUND", "message": "no process"})
    assert isinstance(exc, ProcessNotFound) and exc.message == "no process"
    assert type(error_from(500, "garbage")) is PmdError
