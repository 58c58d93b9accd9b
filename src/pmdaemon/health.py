"""Health checks of one process: an HTTP GET that must answer 2xx, or a script that must
exit 0, each within its timeout, on its own interval. The result is data (a HealthResult);
ManagedProcess decides what a failure means."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import ssl
import string
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from pmdaemon.launcher import NOBODY_ELSE, Account
from pmdaemon.model import HealthCheck

OUTPUT_LINES = 10
MAX_RESPONSE_HEAD = 16 * 1024


@dataclass(frozen=True, slots=True)
class HealthResult:
    ok: bool
    error: str | None
    response_ms: float
    output: tuple[str, ...] = ()


def expand(text: str, env: Mapping[str, str]) -> str:
    """``$PORT`` / ``${PORT}`` (any variable of the process) in a URL or script, so one
    check line serves every instance of a cluster."""
    return string.Template(text).safe_substitute(env)


async def run_check(
    check: HealthCheck, cwd: str, env: Mapping[str, str], who: Account = NOBODY_ELSE
) -> HealthResult:
    """One check; a script check runs as ``who``, the app's own account."""
    started = time.monotonic()
    try:
        if check.type == "http":
            assert check.url is not None
            error = await asyncio.wait_for(_http(expand(check.url, env)), check.timeout)
            output: tuple[str, ...] = ()
        else:
            assert check.script is not None
            error, output = await _script(check.script, cwd, env, check.timeout, who)
    except TimeoutError:
        error, output = f"no answer within {check.timeout:g}s", ()
    except OSError as exc:
        error, output = f"{exc.strerror or exc}", ()
    except ValueError as exc:  # a URL that does not parse once expanded: a failed check
        error, output = f"invalid check: {exc}", ()
    elapsed = (time.monotonic() - started) * 1000
    return HealthResult(error is None, error, round(elapsed, 1), output)


async def _http(url: str) -> str | None:
    """None for a 2xx answer, else what went wrong."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    context = ssl.create_default_context() if secure else None
    reader, writer = await asyncio.open_connection(host, port, ssl=context)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUser-Agent: pmdaemon-health\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        await writer.drain()
        status_line = await reader.readline()
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    fields = status_line.decode("latin-1").split()
    if len(fields) < 2 or not fields[1].isdigit():
        return "not an HTTP answer"
    status = int(fields[1])
    return None if 200 <= status < 300 else f"HTTP {status}"


async def _script(
    script: str, cwd: str, env: Mapping[str, str], timeout: float, who: Account
) -> tuple[str | None, tuple[str, ...]]:
    """Run the check script in its own session; on timeout kill its whole group."""
    try:
        argv = shlex.split(expand(script, env))
    except ValueError as exc:
        return f"cannot split the script: {exc}", ()
    if not argv:
        return "empty script", ()
    if "/" in argv[0]:
        argv[0] = os.path.join(cwd, argv[0])
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
        # The daemon's loop is uvloop, whose subprocesses take no user/group: the account
        # is changed in the child, before exec, when there is one to change to.
        preexec_fn=None if who == NOBODY_ELSE else who.become,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 5)
        return f"no exit within {timeout:g}s (killed)", ()
    finally:
        # Anything the script left in its session goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    lines = tuple(out.decode("utf-8", "replace").splitlines()[-OUTPUT_LINES:])
    code = proc.returncode
    if code == 0:
        return None, lines
    reason = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
    return reason, lines
