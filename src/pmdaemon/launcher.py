"""From a ProcessSpec to a running child: the command line (interpreter by extension, a
command string split like a shell would), the environment, the log files, and the spawn in
a session of its own."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from pmdaemon.errors import SpawnError
from pmdaemon.logpipes import Outputs
from pmdaemon.model import ProcessSpec

INTERPRETERS = {
    ".py": "python3",
    ".js": "node",
    ".mjs": "node",
    ".cjs": "node",
    ".sh": "bash",
    ".rb": "ruby",
}


def _which(program: str, env: Mapping[str, str]) -> str | None:
    return shutil.which(program, path=env.get("PATH", os.defpath))


def command_line(spec: ProcessSpec, env: Mapping[str, str]) -> list[str]:
    """The argv to exec for ``spec``, or SpawnError saying what is missing."""
    script, args = spec.script, list(spec.args)
    path = os.path.join(spec.cwd, os.path.expanduser(script))
    if not os.path.isfile(path) and len(script.split()) > 1:
        try:
            words = shlex.split(script)
        except ValueError as exc:
            raise SpawnError(f"cannot split script {script!r}: {exc}") from None
        script, args = words[0], words[1:] + args
        path = os.path.join(spec.cwd, os.path.expanduser(script))
    interpreter = spec.interpreter
    if interpreter and interpreter != "none":
        if not os.path.isfile(path):
            raise SpawnError(f"script {script!r} not found in {spec.cwd}")
        return [_resolve_interpreter(interpreter, env, spec.cwd), path, *args]
    if os.path.isfile(path):
        if os.access(path, os.X_OK):
            return [path, *args]
        ext = os.path.splitext(path)[1].lower()
        if ext in INTERPRETERS:
            return [_resolve_interpreter(INTERPRETERS[ext], env, spec.cwd), path, *args]
        raise SpawnError(
            f"script {script!r} is not executable and has no known extension "
            f"({', '.join(INTERPRETERS)}): make it executable or set an interpreter"
        )
    if "/" in script:
        raise SpawnError(f"script {script!r} not found (looked in {spec.cwd})")
    program = _which(script, env)
    if program is None:
        raise SpawnError(
            f"script {script!r} not found: it is neither a file in {spec.cwd} nor a program on PATH"
        )
    return [program, *args]


def _resolve_interpreter(name: str, env: Mapping[str, str], cwd: str) -> str:
    if "/" in name:  # a path, relative to the app's working directory
        path = os.path.join(cwd, os.path.expanduser(name))
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
        raise SpawnError(f"interpreter {name!r} not found or not executable (in {cwd})")
    found = _which(name, env)
    if found is None:
        raise SpawnError(f"interpreter {name!r} not found on PATH")
    return found


def read_env_file(path: Path) -> dict[str, str]:
    """A .env file: ``KEY=VALUE`` lines, optional ``export``, ``#`` comments, values
    optionally in matching single or double quotes. Any other line is an error."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise SpawnError(f"cannot read env_file {path}: {reason}") from None
    env: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[7:].lstrip()
        key, sep, value = stripped.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or any(c.isspace() for c in key) or "\x00" in line:
            raise SpawnError(f"env_file {path} line {number}: expected KEY=VALUE")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key] = value
    return env


def spawn(
    argv: list[str], cwd: str, env: Mapping[str, str], outputs: Outputs
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session with stdout and stderr on ``outputs`` (the log
    keeper's pipes or the log files). The child's ends are closed here either way."""
    try:
        if not os.path.isdir(cwd):
            raise SpawnError(f"working directory {cwd!r} does not exist")
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=outputs.stdout,
            stderr=outputs.stderr,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        raise SpawnError(f"cannot start {argv[0]!r}: {exc.strerror}") from None
    finally:
        outputs.close_child_ends()
