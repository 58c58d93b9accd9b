"""`pmdaemon startup` / `unstartup`: a systemd unit that starts the daemon at boot (system
unit `pmdaemon-<user>.service` running as that user, or with --user a unit of the user's
own systemd). The daemon then starts every process that was running when it last stopped.

Only the standard library: this runs in the CLI."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

from pmdaemon.cli import UsageError
from pmdaemon.errors import OperationFailed

SYSTEM_DIR = Path("/etc/systemd/system")


def unit_name(user: bool) -> str:
    return "pmdaemon.service" if user else f"pmdaemon-{pwd.getpwuid(os.getuid()).pw_name}.service"


def unit_dir(user: bool, override: str | None) -> Path:
    if override:
        return Path(override).absolute()
    if user:
        config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        return Path(config) / "systemd" / "user"
    return SYSTEM_DIR


def quoted(value: str) -> str:
    """One word of a unit file line: specifiers (%) and quotes escaped, quoted when it
    holds a space."""
    value = value.replace("%", "%%").replace("\\", "\\\\").replace('"', '\\"')
    return f'"{value}"' if any(c.isspace() for c in value) or '"' in value else value


def render_unit(home: Path, user: bool) -> str:
    account = pwd.getpwuid(os.getuid())
    lines = [
        "[Unit]",
        f"Description=pmdaemon process manager ({account.pw_name}, home {home})",
        "After=network.target",
        "",
        "[Service]",
        "Type=simple",
    ]
    if not user:
        lines += [f"User={account.pw_name}"]
    lines += [
        f"Environment={quoted(f'PMDAEMON_HOME={home}')}",
        f"ExecStart={quoted(sys.executable)} -m pmdaemon.daemon --home {quoted(str(home))} "
        "--foreground",
        # SIGTERM to the daemon only: it stops the apps itself (in parallel, saving the
        # state); whatever is left after the timeout is killed.
        "KillMode=mixed",
        "TimeoutStopSec=120",
        "Restart=on-failure",
        "RestartSec=1",
        "LimitNOFILE=65536",
        "",
        "[Install]",
        f"WantedBy={'default.target' if user else 'multi-user.target'}",
        "",
    ]
    return "\n".join(lines)


def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def systemctl(user: bool, *args: str) -> None:
    command = ["systemctl", *(["--user"] if user else []), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise OperationFailed(
            f"`{' '.join(command)}` failed: {detail[-1] if detail else result.returncode}"
        )


def check_init(init: str | None) -> None:
    if init not in (None, "systemd"):
        raise UsageError(f"unsupported init system {init!r}: only systemd is supported")


def install(home: Path, *, init: str | None, user: bool, directory: str | None) -> list[str]:
    """Write the unit (and enable it when systemd runs here); the lines to print."""
    check_init(init)
    target = unit_dir(user, directory) / unit_name(user)
    text = render_unit(home, user)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except OSError as exc:
        hint = "; run it as root, or use --user" if not user and exc.errno == 13 else ""
        raise OperationFailed(f"cannot write {target}: {exc.strerror}{hint}") from None
    out = [f"wrote {target}"]
    scope = "--user " if user else ""
    if directory is None and systemd_running():
        systemctl(user, "daemon-reload")
        systemctl(user, "enable", target.name)
        out.append(f"enabled {target.name}: the daemon starts at boot")
        if user:
            out.append("for it to start before you log in: loginctl enable-linger")
    else:
        why = "systemd is not running here" if directory is None else "a unit directory was given"
        out.append(f"not enabled ({why}); on the target: systemctl {scope}enable {target.name}")
    return out


def remove(*, init: str | None, user: bool, directory: str | None) -> list[str]:
    check_init(init)
    target = unit_dir(user, directory) / unit_name(user)
    if not target.exists():
        raise OperationFailed(f"no unit installed at {target}")
    if directory is None and systemd_running():
        systemctl(user, "disable", target.name)
    try:
        target.unlink()
    except OSError as exc:
        raise OperationFailed(f"cannot remove {target}: {exc.strerror}") from None
    if directory is None and systemd_running():
        systemctl(user, "daemon-reload")
    return [f"removed {target}"]
