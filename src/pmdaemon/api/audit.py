"""The audit log: one JSON line per mutating call on the TCP API, in ``<home>/audit.log``
(rotated at 10 MiB, three old files kept). It names the key by its id (a hash prefix),
never the key itself, and the path without its query string (which may carry api_key=)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

from pmdaemon.units import format_timestamp

MAX_SIZE = 10 * 1024 * 1024
KEEP = 3
TARGET = re.compile(r"^/api/(?:processes|logs)/([^/]+)")

log = logging.getLogger("pmdaemon.audit")


class AuditLog:
    def __init__(self, path: Path, max_size: int = MAX_SIZE, keep: int = KEEP) -> None:
        self.path = path
        self.max_size = max_size
        self.keep = keep
        self._failing = False

    def record(
        self,
        *,
        client: str,
        key_id: str | None,
        auth: str,
        method: str,
        path: str,
        status: int,
    ) -> None:
        match = TARGET.match(path)
        entry: dict[str, Any] = {
            "time": format_timestamp(time.time()),
            "client": client,
            "key_id": key_id,
            "auth": auth,
            "action": f"{method} {path[:200]}",
            "target": match.group(1)[:100] if match else None,
            "status": status,
            "result": "ok" if 200 <= status < 400 else "refused" if status < 500 else "failed",
        }
        self.write(json.dumps(entry) + "\n")

    def write(self, line: str) -> None:
        try:
            with contextlib.suppress(FileNotFoundError):
                if os.stat(self.path).st_size + len(line) > self.max_size:
                    self._rotate()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        except OSError as exc:  # a full disk must not fail the call it records
            if not self._failing:
                log.error("cannot write the audit log %s: %s", self.path, exc.strerror)
            self._failing = True
        else:
            self._failing = False

    def _rotate(self) -> None:
        for index in range(self.keep - 1, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                os.replace(f"{self.path}.{index}", f"{self.path}.{index + 1}")
        os.replace(self.path, f"{self.path}.1")
