"""The log keeper: a small process of its own that reads the apps' stdout and stderr pipes
and writes the log files, rotating them by size at line boundaries and stamping lines when
asked.

Why a process of its own: apps must never block or lose output because the daemon is busy,
restarting or killed. The keeper holds the read end of every pipe, so an app's writes land
in its files while no daemon runs (the daemon keeps a second read end of each pipe, so a
keeper that dies takes no app down with SIGPIPE; the daemon starts a new keeper and hands it
the pipes again).

Protocol: a SOCK_SEQPACKET socket ``<home>/logkeeper.sock`` (0600). Each message is one
JSON object; ``attach`` carries the pipe's read end as SCM_RIGHTS.

- ``{"op": "attach", "path", "max_size", "max_files", "stamp": parts|null}`` + fd: read the
  pipe into the file (a pipe already attached only updates the file's settings).
- ``{"op": "attach_each", "paths": [...], ...}`` + one fd per path: the same for all of a
  child's pipes in one message, all or none.
- ``{"op": "flush", "paths": [...]}`` -> ``{"ok": true, "flushed": n}``: empty the files
  and remove their rotated generations.
- ``{"op": "stats"}`` -> ``{"pid", "sources", "files", "dropped"}``.

It runs as ``python -m pmdaemon.logkeeper HOME`` and exits once no daemon is connected and
every pipe has reached its end. Only the standard library is imported (it must stay small:
its memory counts against the daemon's)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import resource
import selectors
import signal
import socket
import stat
import struct
import sys
import termios
import time
from pathlib import Path

from pmdaemon.logstamp import Parts, Stamper

READ_MAX = 1024 * 1024  # bytes taken from one pipe per turn
MAX_LINE = 64 * 1024  # a line longer than this is written in pieces
PARTIAL_FLUSH = 1.0  # seconds a line without its newline waits before it is written anyway
RECHECK = 1.0  # seconds between looks at whether a log file was moved or emptied outside
# A pipe that is found full is grown to BIG_PIPE (a busy writer then blocks far less),
# within GROW_BUDGET for all pipes: the kernel counts pipe buffers per user (64 MiB by
# default, pipe-user-pages-soft), and past that gives every new pipe of the user a tiny one.
BIG_PIPE = 1024 * 1024
GROW_BUDGET = 32 * 1024 * 1024
F_SETPIPE_SZ = 1031
F_GETPIPE_SZ = 1032
MSG_MAX = 64 * 1024
SPLICE_MAX = 1024 * 1024  # bytes moved by one splice
# Splicing needs a second descriptor per file (splice cannot write to O_APPEND): worth it
# for a bulk writer only, so a quiet app's file never costs it.
SPLICE_MIN = 64 * 1024
NEWLINE = ord("\n")


def log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} logkeeper {os.getpid()}: {message}", flush=True)


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a unix socket (SO_PEERCRED)."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < want:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, 1 << 20), hard))


class LogFile:
    """One log file: its open descriptor, size and rotation settings."""

    def __init__(self, path: str, max_size: int, max_files: int, stamp: Parts | None) -> None:
        self.path = path
        self.max_size = max_size
        self.max_files = max_files
        self.stamper = Stamper(stamp) if stamp else None
        self.fd = -1
        self.splice_fd = -1
        self.size = 0
        self.inode = (0, 0)
        self.sources = 0
        self.checked = 0.0
        self.dropped = 0
        self.failing = False
        self.open()

    def configure(self, max_size: int, max_files: int, stamp: Parts | None) -> None:
        self.max_size, self.max_files = max_size, max_files
        if stamp != (self.stamper.parts if self.stamper else None):
            self.stamper = Stamper(stamp) if stamp else None

    def open(self) -> None:
        self.close()
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(
                self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640
            )
            st = os.fstat(self.fd)
        except OSError as exc:
            self._failed(exc)
            return
        self.size, self.inode, self.checked = st.st_size, (st.st_dev, st.st_ino), time.monotonic()

    def close(self) -> None:
        for fd in (self.fd, self.splice_fd):
            if fd >= 0:
                os.close(fd)
        self.fd = self.splice_fd = -1

    def splice(self, pipe: int) -> int | None:
        """Move what ``pipe`` holds straight into the file, without copying it through
        this process, when that cannot reach a rotation (the rest of a line the pipe ends
        inside is written by the next read, before any rotation). The bytes moved (0 at
        the pipe's end, -1 if it was empty), or None when the caller must read instead."""
        if self.failing or self.max_size - self.size < SPLICE_MAX + MAX_LINE:
            return None
        self.recheck(time.monotonic())
        if self.splice_fd < 0:
            if self.fd < 0:
                return None
            try:  # splice cannot write to an O_APPEND descriptor: one at explicit offsets
                self.splice_fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
                st = os.fstat(self.splice_fd)
            except OSError:
                return None
            if (st.st_dev, st.st_ino) != self.inode:
                return None
        try:
            moved = os.splice(pipe, self.splice_fd, SPLICE_MAX, offset_dst=self.size)
        except BlockingIOError:
            return -1
        except OSError:
            return None  # the read path reports it (and drops lines if the disk is full)
        self.size += moved
        return moved

    def _failed(self, exc: OSError) -> None:
        if not self.failing:
            log(f"cannot write {self.path}: {exc.strerror}; dropping its lines until it can")
        self.failing = True

    def recheck(self, now: float) -> None:
        """Follow a file moved, removed or emptied by someone else (logrotate, `> file`)."""
        if now - self.checked < RECHECK and self.fd >= 0:
            return
        self.checked = now
        try:
            st = os.stat(self.path)
        except OSError:
            self.open()
            return
        if (st.st_dev, st.st_ino) != self.inode or self.fd < 0:
            self.open()
        else:
            self.size = st.st_size

    def write(self, buf: bytes | bytearray, start: int = 0, end: int | None = None) -> None:
        """Append ``buf[start:end]`` (whole lines, as a rule), rotating between lines so
        that no file grows past max_size unless a single line is longer than that."""
        end = len(buf) if end is None else end
        self.recheck(time.monotonic())
        while start < end:
            room = self.max_size - self.size
            if end - start <= room:
                self._append(buf, start, end)
                return
            cut = buf.rfind(b"\n", start, start + max(room, 0)) + 1
            if cut == 0 and self.size == 0:  # one line longer than a whole file
                cut = buf.find(b"\n", start, end) + 1 or end
            if cut:
                self._append(buf, start, cut)
                start = cut
            if start < end:
                self.rotate()

    def _append(self, buf: bytes | bytearray, start: int, end: int) -> None:
        if self.fd < 0:
            self.open()
            if self.fd < 0:
                self.dropped += end - start
                return
        view = memoryview(buf)[start:end]
        while view:
            try:
                written = os.write(self.fd, view)
            except InterruptedError:
                continue
            except OSError as exc:  # a full disk: keep the app running, drop the lines
                self._failed(exc)
                self.dropped += len(view)
                return
            self.size += written
            view = view[written:]
        if self.failing:
            log(f"writing {self.path} again")
            self.failing = False

    def rotate(self) -> None:
        """out.log -> out.log.1 -> ... -> out.log.N; the oldest is dropped."""
        try:
            for index in range(self.max_files - 1, 0, -1):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(f"{self.path}.{index}", f"{self.path}.{index + 1}")
            os.replace(self.path, f"{self.path}.1")
        except OSError as exc:
            self._failed(exc)
            with contextlib.suppress(OSError):  # cannot rename: never grow without bound
                os.ftruncate(self.fd, 0)
        self.open()

    def flush(self) -> None:
        flush_file(self.path)
        self.size = 0


def flush_file(path: str) -> None:
    """Empty ``path`` (a writer appending to it goes on at the new end) and remove its
    rotated generations."""
    directory, name = os.path.split(path)
    with contextlib.suppress(OSError):
        for entry in os.listdir(directory or "."):
            suffix = entry[len(name) + 1 :]
            if entry.startswith(name + ".") and suffix.isdigit():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(directory, entry))
    with contextlib.suppress(FileNotFoundError):
        os.truncate(path, 0)


class Source:
    """One pipe: its read end and a line not yet complete."""

    def __init__(
        self,
        fd: int,
        target: LogFile,
        key: tuple[int, int],
        also: LogFile | None = None,
        json_fields: dict[str, object] | None = None,
    ) -> None:
        self.fd = fd
        self.json_fields = json_fields  # log_type json: type, process_id, app_name
        self.target = target
        self.also = also  # the combined log (log_file) that gets every line too
        self.key = key
        self.pending = b""
        self.pending_since = 0.0
        self.mid_line = False  # a partial line was written: the next bytes continue it
        self.capacity = 0  # the pipe's buffer size; 0 when unknown

    def emit(self, buf: bytes | bytearray, start: int, end: int) -> None:
        """Write ``buf[start:end]``, each line stamped when the file asks for it."""
        if start >= end:
            return
        stamper = self.target.stamper
        if self.json_fields is not None:
            out = self._as_json(bytes(buf[start:end]), stamper)
            buf, start, end = out, 0, len(out)
        elif stamper is not None:
            prefix = stamper.prefix(time.time())
            data = bytes(buf[start:end])
            body = data[:-1].replace(b"\n", b"\n" + prefix) + data[-1:]
            out = body if self.mid_line else prefix + body
            buf, start, end = out, 0, len(out)
        self.mid_line = buf[end - 1] != NEWLINE
        self.target.write(buf, start, end)
        if self.also is not None:
            self.also.write(buf, start, end)

    def _as_json(self, data: bytes, stamper: Stamper | None) -> bytes:
        """Each line as PM2's log_type json writes it: message, timestamp (the app's
        log_date_format, or ISO 8601 in UTC), type, process_id, app_name."""
        now = time.time()
        if stamper is not None:
            stamp = stamper.prefix(now)[:-2].decode()
        else:
            ms = int(now * 1000) % 1000
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{ms:03d}Z"
        lines = data[:-1].split(b"\n") if data.endswith(b"\n") else data.split(b"\n")
        return b"".join(
            json.dumps(
                {
                    "message": line.decode(errors="replace"),
                    "timestamp": stamp,
                    **(self.json_fields or {}),
                },
                ensure_ascii=False,
            ).encode()
            + b"\n"
            for line in lines
        )

    def feed(self, buf: bytearray, size: int, now: float) -> None:
        """Take ``buf[:size]`` just read: complete lines are written now, a trailing
        partial line waits for its end (or PARTIAL_FLUSH, or MAX_LINE bytes)."""
        cut = buf.rfind(b"\n", 0, size) + 1
        start = 0
        if self.pending:
            if cut == 0:
                self.pending += bytes(buf[:size])
                if len(self.pending) > MAX_LINE:
                    self.drain_partial(now, force=True, newline=False)
                return
            first = buf.find(b"\n", 0, size) + 1
            line = self.pending + bytes(buf[:first])
            self.pending = b""
            self.emit(line, 0, len(line))
            start = first
        if cut < size and size - cut <= MAX_LINE:
            self.pending = bytes(buf[max(cut, start) : size])
            self.pending_since = now
            size = max(cut, start)
        self.emit(buf, start, size)

    def drain_partial(self, now: float, force: bool = False, newline: bool = True) -> None:
        if self.pending and (force or now - self.pending_since >= PARTIAL_FLUSH):
            data, self.pending = self.pending, b""
            if force and newline:
                data += b"\n"
            self.emit(data, 0, len(data))


def _available(fd: int) -> int:
    """Bytes waiting in a pipe."""
    try:
        return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"), sys.byteorder)
    except OSError:
        return 0


class Keeper:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.sel = selectors.DefaultSelector()
        self.files: dict[str, LogFile] = {}
        self.sources: dict[int, Source] = {}
        self.pipes: dict[tuple[int, int], Source] = {}
        self.partial: set[Source] = set()  # sources holding a line without its newline
        self.clients: set[socket.socket] = set()
        self.listener: socket.socket | None = None
        self.grown = 0  # bytes of pipe buffer added by grow()
        self.buffer = bytearray(READ_MAX)  # every read lands here: no allocation per read
        self.stopping = False
        self.leaving = False  # the daemon said goodbye: no need to wait for a next one

    def listen(self) -> None:
        # SIGTERM wakes the loop through a pipe; the loop then writes what it has and ends.
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, lambda *_: None)
        self.sel.register(wake_r, selectors.EVENT_READ, "signal")
        path = self.home / "logkeeper.sock"
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)
        try:
            sock.bind(str(path))
        finally:
            os.umask(old)
        sock.listen(16)
        sock.setblocking(False)
        self.listener = sock
        self.sel.register(sock, selectors.EVENT_READ, "listen")

    # -- control --------------------------------------------------------------------------

    def accept(self) -> None:
        assert self.listener is not None
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return
        if peer_uid(conn) != os.getuid():
            conn.close()  # only the owner of the home talks to its keeper
            return
        conn.setblocking(False)
        self.leaving = False
        self.clients.add(conn)
        self.sel.register(conn, selectors.EVENT_READ, "client")

    def drop_client(self, conn: socket.socket) -> None:
        self.sel.unregister(conn)
        self.clients.discard(conn)
        conn.close()

    def on_message(self, conn: socket.socket) -> None:
        try:
            raw, fds, flags, _ = socket.recv_fds(conn, MSG_MAX, 4)
        except BlockingIOError:
            return
        except OSError:
            self.drop_client(conn)
            return
        if not raw:
            for fd in fds:
                os.close(fd)
            self.drop_client(conn)
            return
        try:
            message = json.loads(raw)
            if flags & socket.MSG_CTRUNC:  # the kernel could not give us the descriptor
                raise OSError(errno.EMFILE, "out of file descriptors")
            reply = self.handle(message, fds)
        except Exception as exc:  # a bad message must not end the keeper
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            log(f"bad request: {reply['error']}")
        if reply is not None:
            with contextlib.suppress(OSError):
                conn.send(json.dumps(reply).encode())

    def handle(self, message: dict[str, object], fds: list[int]) -> dict[str, object] | None:
        op = message.get("op")
        if op in ("attach", "attach_each"):
            if not fds:
                raise ValueError(f"{op}: no pipe came with the message")
            if op == "attach":
                targets = [str(message["path"])] * len(fds)
            else:
                listed = message.get("paths")
                if not isinstance(listed, list) or len(listed) != len(fds):
                    raise ValueError("attach_each: one path per pipe")
                targets = [str(p) for p in listed]
            self.attach(list(zip(fds, targets, strict=True)), message)
            return {"ok": True}
        if op == "flush":
            paths = message.get("paths")
            assert isinstance(paths, list)
            for path in paths:
                target = self.files.get(str(path))
                if target is not None:
                    target.flush()
                else:
                    flush_file(str(path))
            return {"ok": True, "flushed": len(paths)}
        if op == "bye":  # the daemon stops: end once the pipes have
            self.leaving = True
            return None
        if op == "stats":
            return {
                "ok": True,
                "pid": os.getpid(),
                "sources": len(self.sources),
                "files": sorted(self.files),
                "dropped": sum(f.dropped for f in self.files.values()),
            }
        return {"ok": False, "error": f"unknown op {op!r}"}

    def attach(self, pipes: list[tuple[int, str]], message: dict[str, object]) -> None:
        """Read each (pipe, path). All or nothing: when one cannot be taken, none is and
        the error propagates (the caller closes the descriptors that came)."""
        max_size, max_files = int(message["max_size"]), int(message["max_files"])  # type: ignore[call-overload]
        stamp = message.get("stamp")
        keys = []
        for fd, _ in pipes:
            st = os.fstat(fd)
            if not stat.S_ISFIFO(st.st_mode):
                raise ValueError("attach: not a pipe")
            keys.append((st.st_dev, st.st_ino))
        targets: list[LogFile] = []
        opened: dict[str, LogFile] = {}
        combined = message.get("combined")
        if combined in {p for _, p in pipes}:  # the same file twice would get every line twice
            combined = None
        paths = [p for _, p in pipes] + ([str(combined)] if combined else [])
        try:  # everything that can fail comes before anything is registered
            for path in paths:
                target = self.files.get(path) or opened.get(path)
                if target is None:
                    target = LogFile(path, max_size, max_files, stamp)  # type: ignore[arg-type]
                    if target.fd < 0:  # refused: the daemon lets the app write it itself
                        raise OSError(errno.EIO, f"cannot open {path}")
                    opened[path] = target
                elif target.path not in opened:
                    target.configure(max_size, max_files, stamp)  # type: ignore[arg-type]
                targets.append(target)
        except BaseException:
            for other in opened.values():
                other.close()
            raise
        self.files.update(opened)
        also = targets.pop() if combined else None
        app = message.get("json")
        kinds = message.get("kinds")
        if not isinstance(kinds, list) or len(kinds) != len(pipes):
            kinds = ["out"] * len(pipes)
        for (fd, _), key, target, kind in zip(pipes, keys, targets, kinds, strict=True):
            if key in self.pipes:  # already read here (a re-adopted process): one reader only
                os.close(fd)
                continue
            os.set_blocking(fd, False)
            fields = None
            if isinstance(app, list) and len(app) == 2:
                fields = {"type": str(kind), "process_id": app[1], "app_name": app[0]}
            source = Source(fd, target, key, also, fields)
            if also is not None:
                also.sources += 1
            with contextlib.suppress(OSError):
                source.capacity = fcntl.fcntl(fd, F_GETPIPE_SZ)
            target.sources += 1
            self.sources[fd] = source
            self.pipes[key] = source
            self.sel.register(fd, selectors.EVENT_READ, "pipe")
        if also is not None and also.sources == 0:  # every pipe was read here already
            also.close()
            del self.files[also.path]

    # -- pipes ----------------------------------------------------------------------------

    def on_readable(self, fd: int, now: float) -> None:
        source = self.sources[fd]
        target = source.target
        if (
            target.stamper is None
            and target.sources == 1
            and source.also is None
            and source.json_fields is None
            and not source.pending
            and _available(fd) >= SPLICE_MIN
        ):
            moved = target.splice(fd)
            if moved is not None:
                if moved == 0:
                    self.close_source(source, now)
                elif moved >= source.capacity > 0 and source.capacity < BIG_PIPE:
                    self.grow(source)
                return
        try:
            size = os.readv(fd, [self.buffer])
        except BlockingIOError:
            return
        except OSError:
            size = 0
        if size:
            if size >= source.capacity > 0 and source.capacity < BIG_PIPE:
                self.grow(source)
            source.feed(self.buffer, size, now)
            if source.pending:
                self.partial.add(source)
        else:
            self.close_source(source, now)

    def grow(self, source: Source) -> None:
        """The pipe was full: its writer may have waited. Give it a bigger buffer."""
        if self.grown + BIG_PIPE - source.capacity > GROW_BUDGET:
            return
        try:
            capacity = fcntl.fcntl(source.fd, F_SETPIPE_SZ, BIG_PIPE)
        except OSError:
            source.capacity = BIG_PIPE  # not allowed: do not ask again
            return
        self.grown += capacity - source.capacity
        source.capacity = capacity

    def close_source(self, source: Source, now: float) -> None:
        source.drain_partial(now, force=True)
        self.partial.discard(source)
        self.sel.unregister(source.fd)
        os.close(source.fd)
        del self.sources[source.fd]
        self.pipes.pop(source.key, None)
        target = source.target
        if source.capacity > BIG_PIPE // 2:
            self.grown = max(0, self.grown - source.capacity)
        for done in (target, source.also):
            if done is None:
                continue
            done.sources -= 1
            if done.sources == 0:
                done.close()
                del self.files[done.path]

    def next_timeout(self, now: float) -> float | None:
        waits = [s.pending_since + PARTIAL_FLUSH - now for s in self.partial if s.pending]
        return max(0.0, min(waits)) if waits else None

    # -- main loop ------------------------------------------------------------------------

    def run(self) -> int:
        idle_since: float | None = None
        while True:
            now = time.monotonic()
            if not self.clients and not self.sources:
                # Give a daemon that is (re)starting a moment to connect, then leave.
                idle_since = idle_since or now
                if self.leaving or now - idle_since > 2.0:
                    return 0
            else:
                idle_since = None
            timeout = self.next_timeout(now)
            if idle_since is not None:
                timeout = 0.1 if timeout is None else min(timeout, 0.1)
            for key, _ in self.sel.select(timeout):
                kind = key.data
                if kind == "pipe":
                    self.on_readable(key.fd, time.monotonic())
                elif kind == "client":
                    self.on_message(key.fileobj)  # type: ignore[arg-type]
                elif kind == "signal":
                    with contextlib.suppress(OSError):
                        os.read(key.fd, 64)
                    self.stopping = True
                else:
                    self.accept()
            if self.stopping:
                return 0
            now = time.monotonic()
            for source in list(self.partial):  # only pipes that hold a line without its end
                source.drain_partial(now)
                if not source.pending:
                    self.partial.discard(source)

    def finish(self) -> None:
        """Write what the pipes hold and what is pending, and let go of the socket."""
        now = time.monotonic()
        for source in list(self.sources.values()):
            with contextlib.suppress(OSError):
                while size := os.readv(source.fd, [self.buffer]):
                    source.feed(self.buffer, size, now)
            source.drain_partial(now, force=True)
        if self.listener is not None:  # ours: no other keeper binds while we hold the lock
            with contextlib.suppress(OSError):
                (self.home / "logkeeper.sock").unlink()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m pmdaemon.logkeeper HOME", file=sys.stderr)
        return 2
    home = Path(args[0])
    lock = os.open(home / "logkeeper.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another keeper serves this home
    raise_fd_limit()
    # Throughput matters here, latency does not: a batch task does not preempt the daemon
    # when a pipe wakes it (e.g. when an app dies, just as the daemon starts it again).
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for the CLI is not ours
    keeper = Keeper(home)
    keeper.listen()
    pid_file = os.open(home / "logkeeper.pid", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(pid_file, f"{os.getpid()}\n".encode())
    os.close(pid_file)
    log("started")
    try:
        return keeper.run()
    finally:
        keeper.finish()
        with contextlib.suppress(OSError):
            if (home / "logkeeper.pid").read_text().strip() == str(os.getpid()):
                (home / "logkeeper.pid").unlink()
        log("stopped")


if __name__ == "__main__":
    sys.exit(main())
