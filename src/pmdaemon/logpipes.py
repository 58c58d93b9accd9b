"""Where a child's stdout and stderr go: pipes read by the log keeper (rotation, timestamps,
nothing lost while the daemon restarts), or, when no keeper can run, the files themselves.

The daemon keeps a second read end of every pipe it hands to the keeper. Nobody reads from
it; it exists so that a keeper that dies leaves the pipes with a reader (the apps' writes
wait in the pipe instead of failing with EPIPE) until a new keeper takes them over."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pmdaemon.logstamp import DEFAULT_FORMAT, Parts, compile_format
from pmdaemon.model import ProcessSpec

log = logging.getLogger("pmdaemon.logs")
CONNECT_TIMEOUT = 5.0
# After a keeper failed to start, spawns do not wait CONNECT_TIMEOUT again for this long
# (apps write their files directly meanwhile), and pipes left without one get a retry.
RETRY_START = 30.0
REQUEST_TIMEOUT = 10.0


class KeeperRefused(Exception):
    """The keeper answered that it cannot take a pipe (e.g. out of descriptors)."""


@dataclass(frozen=True)
class LogSettings:
    max_size: int
    max_files: int
    stamp: Parts | None
    combined: str | None = None  # log_file: every line of both streams, in the keeper only
    json_app: tuple[str, int] | None = None  # log_type json: the app's name and id

    @classmethod
    def of(
        cls, spec: ProcessSpec, default_combined: str | None = None, process_id: int = 0
    ) -> LogSettings:
        """``default_combined``: where ``log_file: true`` writes."""
        stamp = None
        if spec.time or spec.log_date_format:
            stamp = compile_format(spec.log_date_format or DEFAULT_FORMAT)
        if spec.disable_logs:
            combined = None
        elif spec.log_file is True:
            combined = default_combined
        else:
            combined = os.path.join(spec.cwd, spec.log_file) if spec.log_file else None
        json_app = (spec.name, process_id) if spec.log_type == "json" else None
        return cls(spec.max_log_size, spec.max_log_files, stamp, combined, json_app)


@dataclass
class Stream:
    backup: int  # the daemon's read end of the pipe
    path: Path
    settings: LogSettings
    kind: str = "out"  # or "err"; one pipe for both streams is "out"


@dataclass
class Outputs:
    """The child's stdout and stderr descriptors (closed by the caller once it has
    spawned), and the streams the daemon holds for it until it exits."""

    stdout: int
    stderr: int
    streams: list[Stream] = field(default_factory=list)
    later: bool = False  # the streams are still to be handed to the keeper (settle)

    def close_child_ends(self) -> None:
        for fd in {self.stdout, self.stderr}:
            with contextlib.suppress(OSError):
                os.close(fd)


def open_append(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)


class DirectLogs:
    """Children append to their files themselves: no rotation, no timestamps. Used when no
    keeper runs (in-process tests, or a keeper that cannot start)."""

    def outputs(
        self,
        out: Path,
        err: Path,
        settings: LogSettings,
        *,
        check: bool = True,
        later: bool = False,
    ) -> Outputs:
        """The child's descriptors. ``check``: open the files first, so that one that cannot
        be written refuses the start; ``later``: the pipes go to the keeper in ``settle``,
        once the child is started (its first lines wait in them)."""
        return self.files(out, err)

    def files(self, out: Path, err: Path) -> Outputs:
        """The files themselves, opened for appending."""
        out_fd = open_append(out)
        try:
            err_fd = open_append(err) if err != out else out_fd
        except OSError:
            os.close(out_fd)
            raise
        return Outputs(out_fd, err_fd)

    def settle(self, outputs: Outputs) -> None:
        pass

    def adopt(self, pid: int, out: Path, err: Path, settings: LogSettings) -> list[Stream]:
        return []

    def release(self, streams: list[Stream]) -> None:
        for stream in streams:
            with contextlib.suppress(OSError):
                os.close(stream.backup)
        streams.clear()

    def flush(self, paths: list[Path]) -> int:
        from pmdaemon.logkeeper import flush_file

        for path in paths:
            flush_file(str(path))
        return len(paths)

    def close(self) -> None:
        pass


class KeeperLogs(DirectLogs):
    """Pipes to the log keeper process of this home."""

    def __init__(self, home_root: Path, daemon_log: Path, *, retry: float = RETRY_START) -> None:
        self.root = home_root
        self.socket_path = home_root / "logkeeper.sock"
        self.daemon_log = daemon_log
        self.sock: socket.socket | None = None
        self.keeper: subprocess.Popen[bytes] | None = None
        self.streams: dict[int, Stream] = {}  # by backup fd
        self.batch = True  # False once a keeper did not know attach_each
        self.failed_at: float | None = None  # when a keeper last failed to start
        self.retry = retry
        self._retry: asyncio.TimerHandle | None = None
        self.closed = False

    # -- the keeper -----------------------------------------------------------------------

    def _connect(self) -> socket.socket | None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            sock.connect(str(self.socket_path))
        except OSError:
            sock.close()
            return None
        sock.settimeout(REQUEST_TIMEOUT)
        return sock

    def _spawn_keeper(self) -> None:
        if self.keeper is not None and self.keeper.poll() is None:
            return
        self.batch = True  # a keeper of this version
        out = os.open(self.daemon_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            self.keeper = subprocess.Popen(
                [sys.executable, "-m", "pmdaemon.logkeeper", str(self.root)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
                close_fds=True,
                cwd="/",
            )
        finally:
            os.close(out)

    def ensure(self) -> socket.socket:
        """The connection to the keeper, starting one if none answers. OSError if no
        keeper can be reached."""
        if self.sock is not None:
            return self.sock
        if self.closed:
            raise OSError("the daemon is stopping")
        sock = self._connect()
        if sock is None:
            if self.failed_at is not None and time.monotonic() - self.failed_at < self.retry:
                raise OSError(
                    f"no log keeper: the last one did not start (tried again every "
                    f"{self.retry:g} s)"
                )
            self._spawn_keeper()
            deadline = time.monotonic() + CONNECT_TIMEOUT
            while sock is None and time.monotonic() < deadline:
                if self.keeper is not None and self.keeper.poll() is not None:
                    # It lost the lock race to a keeper that was just leaving: try again.
                    self._spawn_keeper()
                time.sleep(0.01)  # sleep-ok: waiting for a socket to be bound
                sock = self._connect()
            if sock is None:
                self.failed_at = time.monotonic()
                raise OSError("the log keeper did not start")
        self.failed_at = None
        self.sock = sock
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().add_reader(sock.fileno(), self._on_readable)
        # A new keeper (or one whose daemon died) gets every pipe this daemon holds.
        for stream in list(self.streams.values()):
            try:
                self._send_attach(sock, [stream])
            except KeeperRefused as exc:
                log.error("the log keeper refused the pipe of %s: %s", stream.path, exc)
        return sock

    def _on_readable(self) -> None:
        """Nothing is sent to us unasked: readable means the keeper went away."""
        sock = self.sock
        if sock is None:
            return
        try:
            data = sock.recv(65536, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._lost("the log keeper exited")

    def _disconnect(self, last_words: bytes | None = None) -> None:
        sock, self.sock = self.sock, None
        if sock is None:
            return
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(sock.fileno())
        if last_words is not None:
            with contextlib.suppress(OSError):
                sock.send(last_words)
        sock.close()

    def _lost(self, why: str) -> None:
        self._disconnect()
        if self.keeper is not None:
            self.keeper.poll()  # reap it
        if self.closed:
            return
        log.warning("%s; starting a new one with %d pipes", why, len(self.streams))
        try:
            self.ensure()
        except OSError as exc:
            log.error("cannot start the log keeper: %s", exc)
            self._retry_later()

    def _retry_later(self) -> None:
        """Pipes without a keeper fill up and then block their apps: try again in a while
        (spawns meanwhile give apps their files directly)."""
        if self._retry is not None or self.closed or not self.streams:
            return
        with contextlib.suppress(RuntimeError):  # no running loop: nothing to schedule on
            self._retry = asyncio.get_running_loop().call_later(self.retry, self._retry_now)

    def _retry_now(self) -> None:
        self._retry = None
        if self.sock is not None or self.closed:
            return
        self.failed_at = None  # this is the retry: start one now
        try:
            self.ensure()
        except OSError as exc:
            log.error("cannot start the log keeper: %s", exc)
            self._retry_later()
            return
        log.warning("a log keeper runs again; it has the %d pipes held", len(self.streams))

    def _send_attach(self, sock: socket.socket, streams: list[Stream]) -> None:
        """One message and one answer for all of a child's pipes (they share settings)."""
        settings = streams[0].settings
        message: dict[str, Any] = {
            "max_size": settings.max_size,
            "max_files": settings.max_files,
            "stamp": settings.stamp,
        }
        if settings.combined:
            message["combined"] = settings.combined
        if settings.json_app:
            message["json"] = list(settings.json_app)
        if len(streams) == 1 or not self.batch:
            for stream in streams:
                one = {"op": "attach", "path": str(stream.path), "kinds": [stream.kind]}
                self._exchange(sock, {**one, **message}, [stream])
            return
        message.update(
            op="attach_each", paths=[str(s.path) for s in streams], kinds=[s.kind for s in streams]
        )
        try:
            self._exchange(sock, message, streams)
        except KeeperRefused as exc:
            if not str(exc).startswith("unknown op"):
                raise
            self.batch = False  # a keeper started by an older version: one pipe at a time
            self._send_attach(sock, streams)

    @staticmethod
    def _exchange(sock: socket.socket, message: dict[str, Any], streams: list[Stream]) -> None:
        socket.send_fds(sock, [json.dumps(message).encode()], [s.backup for s in streams])
        raw = sock.recv(65536)  # every attach is answered: a refused one must be known
        if not raw:
            raise OSError("the log keeper closed the connection")
        try:
            reply = json.loads(raw)
        except ValueError:
            raise OSError("the log keeper answered something unreadable") from None
        if not reply.get("ok"):
            raise KeeperRefused(str(reply.get("error", "refused")))

    def _attach(self, streams: list[Stream]) -> None:
        """Hand pipes to the keeper and hold them; KeeperRefused or OSError when it did not
        take them (they are then not held)."""
        for _ in range(2):
            sock = self.ensure()
            try:
                self._send_attach(sock, streams)
            except OSError as exc:
                self._lost(f"the log keeper did not take a pipe ({exc.strerror or exc})")
                continue
            for stream in streams:
                self.streams[stream.backup] = stream
            return
        raise OSError("the log keeper does not answer")

    def settle(self, outputs: Outputs) -> None:
        """Hand the keeper the pipes ``outputs(later=True)`` made, now that the child runs.
        KeeperRefused if it did not take them: the child must not keep them."""
        if not outputs.later:
            return
        outputs.later = False
        try:
            self._attach(outputs.streams)
        except OSError as exc:
            raise KeeperRefused(str(exc)) from None

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        sock = self.ensure()
        try:
            sock.send(json.dumps(message).encode())
            reply: dict[str, Any] = json.loads(sock.recv(65536) or b"null") or {}
        except (OSError, ValueError) as exc:
            self._lost(f"the log keeper did not answer ({exc})")
            raise OSError("the log keeper did not answer") from None
        return reply

    # -- what ManagedProcess asks for -----------------------------------------------------

    def outputs(
        self,
        out: Path,
        err: Path,
        settings: LogSettings,
        *,
        check: bool = True,
        later: bool = False,
    ) -> Outputs:
        if self.closed:
            return self.files(out, err)
        if check:  # a file that cannot be written refuses the start now, not in the keeper
            for path in {out, err}:
                os.close(open_append(path))
        pipes: list[tuple[int, int]] = []
        streams: list[Stream] = []
        try:
            for kind, path in [("out", out)] if err == out else [("out", out), ("err", err)]:
                read_end, write_end = os.pipe2(os.O_CLOEXEC)
                pipes.append((read_end, write_end))
                streams.append(Stream(read_end, path, settings, kind))
            # Handed over after the spawn only to a keeper that is connected: starting one
            # (or finding none) happens before, so a child never starts with pipes that
            # then go nowhere.
            later = later and self.sock is not None
            if not later:
                self._attach(streams)
        except (OSError, KeeperRefused) as exc:
            for read_end, write_end in pipes:
                self.streams.pop(read_end, None)
                os.close(read_end)
                os.close(write_end)
            log.error("log pipes unavailable (%s); %s writes its files directly", exc, out)
            return self.files(out, err)
        writes = [w for _, w in pipes]
        return Outputs(writes[0], writes[-1], streams, later)

    def adopt(self, pid: int, out: Path, err: Path, settings: LogSettings) -> list[Stream]:
        """Hold and hand to the keeper the pipes of a child left by an earlier daemon (the
        keeper skips the ones it already reads)."""
        if self.closed:
            return []
        streams: list[Stream] = []
        seen: set[str] = set()
        for fd, path in ((1, out), (2, err)):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if not target.startswith("pipe:") or target in seen:
                    continue
                seen.add(target)
                backup = os.open(f"/proc/{pid}/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            stream = Stream(backup, path, settings, "out" if fd == 1 else "err")
            try:
                self._attach([stream])
            except (OSError, KeeperRefused):
                os.close(backup)
                continue
            streams.append(stream)
        return streams

    def release(self, streams: list[Stream]) -> None:
        for stream in streams:
            self.streams.pop(stream.backup, None)
        super().release(streams)

    def flush(self, paths: list[Path]) -> int:
        try:
            reply = self.request({"op": "flush", "paths": [str(p) for p in paths]})
        except OSError:
            return super().flush(paths)
        return int(reply.get("flushed", 0))

    def close(self) -> None:
        """At daemon exit, after every app stopped: the keeper ends once its pipes do."""
        self.closed = True
        if self._retry is not None:
            self._retry.cancel()
        for fd in list(self.streams):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.streams.clear()
        self._disconnect(b'{"op": "bye"}')
