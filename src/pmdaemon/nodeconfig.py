"""Ecosystem files that only node can read: PM2's ``ecosystem.config.js`` (and ``.cjs``,
``.mjs``), and ``.json`` files that are JavaScript rather than JSON (PM2 evaluates those as
one expression, so single quotes and bare keys load there). The file is evaluated by
``ecosystem_loader.cjs`` in a child of the CLI, as the invoking user, with the CLI's
environment and working directory and a time limit; only the data it exports comes back."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

LOADER = Path(__file__).with_name("ecosystem_loader.cjs")
DEFAULT_TIMEOUT = 10.0
TIMEOUT_VARIABLE = "PMDAEMON_CONFIG_TIMEOUT"
MAX_RESULT = 10 * 1024 * 1024


class NodeConfigError(Exception):
    """One sentence about why the file gave no data (without the file's name)."""


def node_path() -> str | None:
    return shutil.which("node") or shutil.which("nodejs")


def timeout() -> float:
    text = os.environ.get(TIMEOUT_VARIABLE, "")
    try:
        value = float(text)
    except ValueError:
        return DEFAULT_TIMEOUT
    return value if 0 < value <= 600 else DEFAULT_TIMEOUT


def evaluate(path: Path, *, expression: bool = False) -> Any:
    """What the file exports (``module.exports``, or an ES module's default export)."""
    node = node_path()
    if node is None:
        raise NodeConfigError(
            "node is needed to read a JavaScript ecosystem file and is not on PATH: install "
            "Node.js, or write the file as JSON or YAML"
        )
    limit = timeout()
    with tempfile.TemporaryDirectory(prefix="pmdaemon-config-") as tmp:
        out = Path(tmp, "result.json")
        argv = [node, str(LOADER), str(path.absolute()), str(out)]
        # What the file prints is shown, on stderr, so that --json output stays clean.
        child = subprocess.Popen(
            [*argv, "expression"] if expression else argv,
            stdin=subprocess.DEVNULL,
            stdout=sys.stderr.fileno() if _has_fd(sys.stderr) else subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            finished = _wait_unreaped(child.pid, limit)
        finally:  # also on Ctrl-C: node runs in a session of its own, which no ^C reaches
            # Anything the file started in node's session ends with it; node is not yet
            # reaped, so its PID (the group's id) cannot have been given to another process.
            _end_group(child.pid)
            code = child.wait()
        if not finished:
            raise NodeConfigError(
                f"node did not finish evaluating the file within {limit:g} s: does it wait "
                f"for something (a server, a prompt, a network call)? ({TIMEOUT_VARIABLE} "
                "sets the limit in seconds)"
            )
        try:
            size = out.stat().st_size
            if size > MAX_RESULT:
                raise NodeConfigError(
                    f"it exports {size // (1024 * 1024)} MiB of data: at most "
                    f"{MAX_RESULT // (1024 * 1024)} MiB is accepted"
                )
            result = json.loads(out.read_bytes())
        except ValueError:
            raise NodeConfigError(
                "what came back from node is not the loader's answer (does the file write "
                "to the loader's result file?)"
            ) from None
        except FileNotFoundError:
            raise NodeConfigError(
                f"node exited with code {code} before it could read the file (the file or "
                "something it loads called process.exit?)"
            ) from None
    return _exported(result)


def _exported(result: Any) -> Any:
    if not isinstance(result, dict):
        raise NodeConfigError("what came back from node is not the loader's answer")
    error = result.get("error")
    if isinstance(error, dict):
        line = f" (line {error['line']})" if error.get("line") else ""
        if error.get("stage") == "serialize":
            raise NodeConfigError(
                f"what it exports cannot be read as data: {error['message']}{line}"
            )
        raise NodeConfigError(
            f"evaluating it raised {error['name']}: {error['message']}{line}"[:500]
        )
    kind = result.get("kind")
    if kind in ("undefined", "null", "empty"):
        raise NodeConfigError(
            "it exports nothing: expected module.exports = { apps: [ ... ] } (or export "
            "default for an ES module)"
        )
    if kind not in ("object", "array"):
        raise NodeConfigError(
            f"it exports a {kind}: expected module.exports = {{ apps: [ ... ] }} (or an "
            "array of apps, or one app object)"
        )
    return result.get("data")


def _has_fd(stream: Any) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True


def _wait_unreaped(pid: int, limit: float) -> bool:
    """True once the child has exited (left as a zombie), False after ``limit`` seconds."""
    fd = os.pidfd_open(pid)
    try:
        return bool(select.select([fd], [], [], limit)[0])
    finally:
        os.close(fd)


def _end_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
