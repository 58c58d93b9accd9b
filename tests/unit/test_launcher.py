from __future__ import annotations

from pathlib import Path

import pytest

from pmdaemon.errors import SpawnError
from pmdaemon.launcher import command_line
from pmdaemon.model import ProcessSpec

ENV = {"PATH": "/usr/bin:/bin"}


def spec(script: str, cwd: Path, **kw: object) -> ProcessSpec:
    return ProcessSpec(name="a", script=script, cwd=str(cwd), **kw)  # type: ignore[arg-type]


def test_extension_picks_the_interpreter(tmp_path: Path) -> None:
    (tmp_path / "s.sh").write_text("echo")
    assert command_line(spec("s.sh", tmp_path, args=("x",)), ENV) == [
        "/usr/bin/bash",
        str(tmp_path / "s.sh"),
        "x",
    ]


def test_executable_files_run_directly(tmp_path: Path) -> None:
    exe = tmp_path / "tool.sh"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert command_line(spec("tool.sh", tmp_path), ENV) == [str(exe)]


def test_strings_with_spaces_are_split_without_a_shell(tmp_path: Path) -> None:
    argv = command_line(spec("sleep '1 2' $HOME", tmp_path, args=("z",)), ENV)
    assert argv == ["/usr/bin/sleep", "1 2", "$HOME", "z"]


def test_explicit_interpreter(tmp_path: Path) -> None:
    (tmp_path / "app.js").write_text("")
    assert command_line(spec("app.js", tmp_path, interpreter="sh"), ENV) == [
        "/usr/bin/sh",
        str(tmp_path / "app.js"),
    ]


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("missing.py", "not found"),
        ("./nope", "not found"),
        ("no-such-cmd-zz", "neither a file"),
        ("echo 'unclosed", "cannot split"),
    ],
)
def test_missing_programs(tmp_path: Path, script: str, message: str) -> None:
    with pytest.raises(SpawnError, match=message):
        command_line(spec(script, tmp_path), ENV)


def test_unknown_extension_not_executable(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(SpawnError, match="not executable"):
        command_line(spec("x.txt", tmp_path), ENV)
