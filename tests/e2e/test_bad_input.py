"""Bad input on the CLI: one clear sentence on stderr, the right exit code, nothing changed
(issue 2, item 6)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from helpers import Pmd, child

PY = sys.executable


def assert_one_line_error(stderr: str, *fragments: str) -> None:
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_unknown_id_or_name(pmd: Pmd) -> None:
    for args in (
        ["stop", "nope"],
        ["restart", "42"],
        ["info", "nope"],
        ["delete", "7", "-f"],
        ["start", "99"],
        ["signal", "SIGUSR1", "nope"],
        ["logs", "nope"],
    ):
        result = pmd.run(*args, check=False)
        assert result.returncode == 1, args
        assert_one_line_error(result.stderr, "no process with id or name")
    assert pmd.list() == []


@pytest.mark.parametrize("name", ["../x", "a" * 200, "all", "123", "bad/name", "héllo", "-x", ""])
def test_invalid_names_are_refused(pmd: Pmd, name: str) -> None:
    result = pmd.run("start", child("park.py"), "--interpreter", PY, "-n", name, check=False)
    assert result.returncode in (1, 2), result
    assert "Traceback" not in result.stderr
    if result.returncode == 1:
        assert_one_line_error(result.stderr, "invalid name", "letters, digits")
    assert pmd.list() == []


def test_env_without_equals_is_a_usage_error(pmd: Pmd) -> None:
    result = pmd.run("start", child("park.py"), "-e", "FOO", check=False)
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "FOO", "KEY=VALUE")
    assert pmd.daemon_pid() is None  # refused before anything was started


def test_missing_script_is_errored_with_a_clear_message(pmd: Pmd, tmp_path: Path) -> None:
    result = pmd.run("start", str(tmp_path / "nothere.py"), "-n", "ghost", check=False)
    assert result.returncode == 1
    assert_one_line_error(result.stderr, "nothere.py", "not found")
    info = pmd.proc("ghost")
    assert info["status"] == "errored" and info["pid"] is None
    assert "not found" in info["last_error"]
    result = pmd.run("start", "no-such-program-xyz", check=False)
    assert result.returncode == 1
    assert_one_line_error(result.stderr, "neither a file", "PATH")


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--min-uptime", "abc"),
        ("--restart-delay", "-5s"),
        ("--kill-timeout", "1x"),
        ("--exp-backoff-restart-delay", "5 s s"),
        ("--min-uptime", "nan"),
        ("--max-restarts", "-1"),
        ("--kill-signal", "SIGNOPE"),
        ("--stop-exit-codes", "1,x"),
    ],
)
def test_malformed_values_are_refused(pmd: Pmd, flag: str, value: str) -> None:
    result = pmd.run(
        "start", child("park.py"), "--interpreter", PY, "-n", "p", f"{flag}={value}", check=False
    )
    assert result.returncode == 1
    field = flag[2:].replace("-", "_")
    assert_one_line_error(result.stderr, field, "expected")
    assert pmd.list() == []


def test_unwritable_home_exits_3_with_the_reason(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    runner = Pmd(blocker / "home")
    result = runner.run("list", check=False)
    assert result.returncode == 3
    assert_one_line_error(result.stderr, "could not start the daemon", str(blocker / "home"))


def test_duplicate_name_is_refused(pmd: Pmd) -> None:
    pmd.start(child("park.py"), "--interpreter", PY, "-n", "one")
    result = pmd.run("start", child("park.py"), "--interpreter", PY, "-n", "one", check=False)
    assert result.returncode == 1
    assert_one_line_error(result.stderr, "already taken")
    assert len(pmd.list()) == 1


def test_usage_errors_exit_2(pmd: Pmd) -> None:
    for args in (
        ["frobnicate"],
        ["stop"],
        ["logs", "--lines", "x"],
        ["list", "--status", "odd"],
        ["stop", "x", "--", "y"],
        ["delete", "nonsense", "--status"],
    ):
        result = pmd.run(*args, check=False)
        assert result.returncode == 2, (args, result)
        assert "Traceback" not in result.stderr
    assert pmd.daemon_pid() is None or pmd.list() == []
