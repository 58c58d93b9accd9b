"""The CLI builds only the parser of the command on the command line: every command line
must parse, fail or print help exactly as with the parser of every command."""

from __future__ import annotations

import contextlib
import io

import pytest

from pmdaemon.cli.main import build_parser, command_word

LINES = [
    [],
    ["ls"],
    ["list", "--json"],
    ["del", "web"],
    ["describe", "0"],
    ["start", "app.py", "-n", "web", "-i", "2", "--time"],
    ["start", "-h"],
    ["logs", "web", "--lines", "x"],
    ["list", "--bogus"],
    ["lst"],
    ["-h", "start"],
    ["--help", "list"],
    ["--he", "ls"],
    ["--verbose", "-h", "ls"],
    ["--verbose", "ls"],
    ["--version", "ls"],
    ["--bogus", "ls"],
    ["--config", "eco.json", "start"],
    ["--config=eco.json", "start"],
    ["--conf", "start", "list"],
    ["--conf=start", "list"],
    ["--c", "list", "ls"],
    ["startup", "systemd", "--user", "--print"],
    ["kill"],
]


def outcome(only: str | None, argv: list[str]) -> tuple[object, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            result: object = sorted(vars(build_parser(only).parse_args(argv)).items())
        except SystemExit as exc:
            result = ("exit", exc.code)
    return result, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("argv", LINES, ids=lambda argv: " ".join(argv) or "(nothing)")
def test_the_one_command_parser_answers_as_the_whole_one(
    argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    assert outcome(command_word(argv), argv) == outcome(None, argv)


def test_a_terminal_that_reports_no_width_gets_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "0")
    monkeypatch.setattr("os.get_terminal_size", lambda fd: __import__("os").terminal_size((0, 0)))
    widths = [len(line) for line in build_parser().format_help().splitlines()]
    assert 60 <= max(widths) <= 80  # not a word per line
