"""The state file: the process table as versioned JSON, written atomically (temp file, fsync,
rename) with the previous generation kept beside it. No pickle, nothing executable."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

import msgspec

from pmdaemon.errors import DaemonStartError
from pmdaemon.model import Desired, ProcessSpec, RestartRecord

FORMAT_VERSION = 1
log = logging.getLogger("pmdaemon.store")


class ProcessRecord(msgspec.Struct):
    id: int
    spec: ProcessSpec
    base_env: dict[str, str]
    desired: Desired
    created_at: float
    restarts: int = 0
    status: str = "stopped"
    pid: int | None = None
    pid_start_ticks: int | None = None
    started_at: float | None = None
    exit_code: int | None = None
    exit_signal: str | None = None
    last_restart_reason: str | None = None
    restart_history: list[RestartRecord] = []
    port_override: int | None = None
    group: str | None = None  # the app name shared by the instances of a cluster
    instance: int = 0
    assigned_port: int | None = None  # reserved while the process exists
    stopped_by_user: bool = False  # a stop was asked for (not the app's own exit)
    source: str | None = None  # the ecosystem file it was started or applied from


class StateFile(msgspec.Struct):
    version: int = FORMAT_VERSION
    next_id: int = 0
    processes: list[ProcessRecord] = []


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(StateFile)


class Store:
    def __init__(self, path: Path, previous: Path) -> None:
        self.path = path
        self.previous = previous
        self._tmp = path.with_name(path.name + ".tmp")

    def load(self) -> StateFile:
        """The newest readable generation; an unreadable file is set aside, never lost."""
        for candidate in (self.path, self.previous):
            try:
                data = candidate.read_bytes()
            except FileNotFoundError:
                continue
            try:
                state = _decoder.decode(data)
            except msgspec.ValidationError as exc:
                # Well-formed JSON this version cannot read: keep it in place and refuse,
                # rather than forget every process it lists.
                raise DaemonStartError(
                    f"{candidate} does not match the state format this pmdaemon reads: {exc}"
                ) from None
            except msgspec.DecodeError as exc:
                aside = candidate.with_name(f"{candidate.name}.corrupt-{int(time.time())}")
                os.replace(candidate, aside)
                log.error("state file %s is unreadable (%s); moved to %s", candidate, exc, aside)
                continue
            if state.version > FORMAT_VERSION:
                raise DaemonStartError(
                    f"{candidate} was written by a newer pmdaemon (format {state.version}); "
                    f"this one reads format {FORMAT_VERSION}"
                )
            if candidate is self.previous:
                log.warning("loaded the previous state generation %s", candidate)
            return state
        return StateFile()

    def save(self, state: StateFile) -> None:
        data = _encoder.encode(state)
        fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError:
            # A full disk: the current generation stays as it is, and the partial file
            # must not keep the space the next attempt needs.
            with contextlib.suppress(OSError):
                os.unlink(self._tmp)
            raise
        finally:
            os.close(fd)
        # Keep the current generation as the previous one without ever leaving the main
        # path missing: hard-link it aside, then rename the new file over it.
        if self.path.exists():
            prev_tmp = self.previous.with_name(self.previous.name + ".tmp")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(prev_tmp)
            os.link(self.path, prev_tmp)
            os.replace(prev_tmp, self.previous)
        os.replace(self._tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
