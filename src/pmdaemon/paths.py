"""Every path under a pmdaemon home, in one place (SPEC §1)."""

from __future__ import annotations

import os
from pathlib import Path


def default_home() -> Path:
    env = os.environ.get("PMDAEMON_HOME")
    if env:
        return Path(env).expanduser().absolute()
    return Path.home() / ".pmdaemon"


class Home:
    """The home directory and every path in it. (A plain class: the CLI imports this, and
    dataclasses would add milliseconds to every command.)"""

    __slots__ = ("root",)

    def __init__(self, root: Path) -> None:
        self.root = root

    def __repr__(self) -> str:
        return f"Home({str(self.root)!r})"

    @classmethod
    def from_env(cls) -> Home:
        return cls(default_home())

    @property
    def socket(self) -> Path:
        return self.root / "daemon.sock"

    @property
    def pid_file(self) -> Path:
        return self.root / "daemon.pid"

    @property
    def lock_file(self) -> Path:
        return self.root / "daemon.lock"

    @property
    def dump_file(self) -> Path:
        return self.root / "dump.json"

    @property
    def audit_log(self) -> Path:
        return self.root / "audit.log"

    @property
    def daemon_log(self) -> Path:
        return self.root / "daemon.log"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def previous_state_file(self) -> Path:
        return self.root / "state.json.prev"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def api_key_file(self) -> Path:
        return self.root / "api-key"

    def out_log(self, name: str) -> Path:
        return self.logs_dir / f"{name}-out.log"

    def error_log(self, name: str) -> Path:
        return self.logs_dir / f"{name}-error.log"
