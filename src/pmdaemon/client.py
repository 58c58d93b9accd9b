"""The CLI's connection to the daemon: HTTP/1.1 over the owner-only Unix socket, written
on the raw socket module so that a command costs tens of milliseconds. Starts the daemon
in the background when it is not running."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from pmdaemon.errors import ERRORS_BY_CODE, DaemonNotRunning, DaemonStartError, PmdError

# typing is only for the type checker: importing it costs the CLI ~3 ms on every command.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

START_TIMEOUT = 30.0
# Long enough for `stop all` of apps with long kill timeouts; a hung daemon still ends.
CALL_TIMEOUT = 600.0


class Response:
    def __init__(
        self, status: int, headers: dict[str, str], sock: socket.socket, buffered: bytes
    ) -> None:
        self.status = status
        self.headers = headers
        self._sock = sock
        self._buf = buffered

    def _read(self) -> bytes:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise EOFError
        return chunk

    def _readline(self) -> bytes:
        while b"\r\n" not in self._buf:
            self._buf += self._read()
        line, _, self._buf = self._buf.partition(b"\r\n")
        return line

    def _readn(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._buf += self._read()
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def chunks(self) -> Iterator[bytes]:
        """The body as it arrives."""
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(self._readline().split(b";")[0], 16)
                if size == 0:
                    return
                yield self._readn(size)
                self._readn(2)
        elif "content-length" in self.headers:
            yield self._readn(int(self.headers["content-length"]))
        else:
            data = self._buf
            try:
                while True:
                    data += self._read()
            except EOFError:  # the body ends with the connection
                pass
            yield data

    def body(self) -> bytes:
        return b"".join(self.chunks())

    def lines(self) -> Iterator[bytes]:
        pending = b""
        for chunk in self.chunks():
            pending += chunk
            *complete, pending = pending.split(b"\n")
            yield from complete
        if pending:
            yield pending

    def close(self) -> None:
        self._sock.close()


class Client:
    def __init__(self, home: Path, *, autostart: bool = True) -> None:
        self.home = home
        self.socket_path = home / "daemon.sock"
        self.autostart = autostart

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(self.socket_path))
        except OSError:
            sock.close()
            raise
        return sock

    def connect(self) -> socket.socket:
        try:
            return self._connect()
        except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
            if not self.autostart:
                raise DaemonNotRunning(f"the daemon is not running (home {self.home})") from None
        except OSError as exc:
            raise DaemonNotRunning(
                f"cannot reach the daemon at {self.socket_path}: {exc.strerror}"
            ) from None
        self.start_daemon()
        try:
            return self._connect()
        except OSError as exc:
            raise DaemonStartError(
                f"the daemon started but its socket {self.socket_path} refuses connections: "
                f"{exc.strerror}"
            ) from None

    def open(
        self, method: str, path: str, body: Any = None, *, timeout: float | None = CALL_TIMEOUT
    ) -> Response:
        """Send a request; return once the status line and headers are in. ``timeout``
        bounds each wait for the daemon (None: wait as long as the stream lasts)."""
        sock = self.connect()
        sock.settimeout(timeout)
        payload = b"" if body is None else json.dumps(body).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: pmdaemon\r\nConnection: close\r\n"
            f"Content-Length: {len(payload)}\r\n"
        )
        if payload:
            head += "Content-Type: application/json\r\n"
        try:
            sock.sendall(head.encode() + b"\r\n" + payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon answered early (e.g. 413) and closed: read what it said
        except TimeoutError:
            sock.close()
            raise DaemonNotRunning(
                f"the daemon did not read the request within {timeout:g}s"
            ) from None
        buf = b""
        try:
            while b"\r\n\r\n" not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    raise EOFError
                buf += chunk
        except (EOFError, ConnectionResetError):
            sock.close()
            raise DaemonNotRunning("the daemon closed the connection without answering") from None
        except TimeoutError:
            sock.close()
            raise DaemonNotRunning(f"the daemon did not answer within {timeout:g}s") from None
        head_raw, _, rest = buf.partition(b"\r\n\r\n")
        status_line, *header_lines = head_raw.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        return Response(int(status_line.split()[1]), headers, sock, rest)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """Send a request and return the decoded JSON, or raise the PmdError it carries."""
        try:
            response = self.open(method, path, body)
        except DaemonNotRunning:
            # A daemon that is closing its socket may drop a request it never read. A read
            # is safe to send again (to it or to the daemon that follows); a change is not.
            if method != "GET" or not self.autostart:
                raise
            response = self.open(method, path, body)
        try:
            raw = response.body()
        except (EOFError, ConnectionResetError):
            raise DaemonNotRunning("the daemon closed the connection mid-answer") from None
        except TimeoutError:
            raise DaemonNotRunning(f"the daemon did not answer within {CALL_TIMEOUT:g}s") from None
        finally:
            response.close()
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
        if not 200 <= response.status < 300:
            raise error_from(response.status, data)
        return data

    def start_daemon(self) -> None:
        """Start a daemon for this home in the background and wait until it answers. If a
        daemon still holds the home but is on its way out, try again until it is gone."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._spawn_daemon():
                return
            try:
                self._wait_for_socket(min(1.0, max(0.0, deadline - time.monotonic())))
                return
            except DaemonStartError:
                if time.monotonic() >= deadline:
                    raise DaemonStartError(
                        f"another daemon holds {self.home} but does not answer"
                    ) from None

    def _spawn_daemon(self) -> bool:
        """True when a new daemon started; False when another one holds the home."""
        import subprocess

        read_fd, write_fd = os.pipe()
        try:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pmdaemon.daemon",
                    "--home",
                    str(self.home),
                    "--ready-fd",
                    str(write_fd),
                ],
                pass_fds=(write_fd,),
                start_new_session=True,
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        finally:
            os.close(write_fd)
        message = _read_until_eof(read_fd, START_TIMEOUT)
        os.close(read_fd)
        if message.startswith("ok"):
            return True
        if message.startswith("running"):
            return False
        if message.startswith("error: "):
            raise DaemonStartError(f"could not start the daemon: {message[7:].strip()}")
        detail = ""
        try:
            _, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        else:
            last = (err or b"").decode(errors="replace").strip().splitlines()[-1:]
            detail = f": {last[0]}" if last else ""
        raise DaemonStartError(
            f"could not start the daemon (no answer within {START_TIMEOUT:g}s){detail}; "
            f"see {self.home / 'daemon.log'}"
        )

    def _wait_for_socket(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self._connect().close()
                return
            except OSError:
                time.sleep(0.01)
        raise DaemonStartError("another daemon holds this home but does not answer")

    def daemon_pid(self) -> int | None:
        try:
            return int((self.home / "daemon.pid").read_text().strip())
        except (OSError, ValueError):
            return None


def _read_until_eof(fd: int, timeout: float) -> str:
    import select

    deadline = time.monotonic() + timeout
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return data.decode(errors="replace")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return data.decode(errors="replace")
        data += chunk


def error_from(status: int, data: Any) -> PmdError:
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        cls = ERRORS_BY_CODE.get(str(data.get("code")), PmdError)
        details = data.get("details") if isinstance(data.get("details"), dict) else {}
        return cls(data["message"], details)
    return PmdError(f"the daemon answered HTTP {status}")
