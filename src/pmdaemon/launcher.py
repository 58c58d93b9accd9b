"""From a ProcessSpec to a running child: the command line (interpreter by extension, a
command string split like a shell would), the environment, the log files, and the spawn in
a session of its own."""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

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
    extra = list(spec.interpreter_args)
    if interpreter == "none":  # PM2's and PMDaemon's "run the file itself"
        if os.path.isfile(path):
            if not os.access(path, os.X_OK):
                raise SpawnError(
                    f"script {script!r} is not executable: with interpreter none the file is "
                    f"run itself (chmod +x it, or name an interpreter)"
                )
            return [path, *args]
    elif interpreter:
        if not os.path.isfile(path):
            raise SpawnError(f"script {script!r} not found in {spec.cwd}")
        return [_resolve_interpreter(interpreter, env, spec.cwd), *extra, path, *args]
    elif os.path.isfile(path):
        ext = os.path.splitext(path)[1].lower()
        if os.access(path, os.X_OK) and not (extra and ext in INTERPRETERS):
            return [path, *args]
        if ext in INTERPRETERS:
            return [_resolve_interpreter(INTERPRETERS[ext], env, spec.cwd), *extra, path, *args]
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


class Account(NamedTuple):
    """Who the child runs as: uid, gid and supplementary groups (None: the daemon's)."""

    uid: int | None = None
    gid: int | None = None
    groups: list[int] | None = None

    def become(self) -> None:
        """Switch the calling (child) process to this account: groups, then gid, then uid."""
        if self.groups is not None:
            os.setgroups(self.groups)
        if self.gid is not None:
            os.setgid(self.gid)
        if self.uid is not None:
            os.setuid(self.uid)


NOBODY_ELSE = Account()  # the daemon's own account


def passwd_entry(user: str) -> pwd.struct_passwd:
    """The account named by ``user`` (a name, or a numeric id); KeyError when none."""
    return pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)


def account(user: str | None, group: str | None) -> Account:
    """The account of ``user`` / ``group`` (names or numeric ids), or SpawnError saying
    why the daemon cannot run a process as them."""
    if user is None and group is None:
        return NOBODY_ELSE
    uid = gid = None
    name = None
    if user is not None:
        try:
            entry = passwd_entry(user)
        except KeyError:
            raise SpawnError(
                f"user {user!r} does not exist on this machine", {"field": "user"}
            ) from None
        uid, gid, name = entry.pw_uid, entry.pw_gid, entry.pw_name
    if group is not None:
        try:
            gid = (grp.getgrnam(group) if not group.isdigit() else grp.getgrgid(int(group))).gr_gid
        except KeyError:
            raise SpawnError(
                f"group {group!r} does not exist on this machine", {"field": "group"}
            ) from None
    if os.geteuid() != 0:  # only root changes accounts; naming one's own is fine
        for field, wanted, own, shown in (
            ("user", uid, os.geteuid(), user),
            ("group", gid if group is not None else None, os.getegid(), group),
        ):
            if wanted is not None and wanted != own:
                raise SpawnError(
                    f"cannot run as {field} {shown!r}: the daemon runs as uid {os.geteuid()}, "
                    "and only a daemon run by root can run processes as another user or group",
                    {"field": field},
                )
        return NOBODY_ELSE
    groups: list[int] = os.getgrouplist(name, gid) if name is not None and gid is not None else []
    return Account(uid, gid, groups)


def account_environment(user: str) -> dict[str, str]:
    """HOME, USER and LOGNAME of ``user`` (empty when it does not exist: spawn says so)."""
    try:
        entry = passwd_entry(user)
    except KeyError:
        return {}
    return {"HOME": entry.pw_dir, "USER": entry.pw_name, "LOGNAME": entry.pw_name}


def spawn(
    argv: list[str], cwd: str, env: Mapping[str, str], outputs: Outputs, who: Account = NOBODY_ELSE
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session with stdout and stderr on ``outputs`` (the log
    keeper's pipes or the log files), as ``who``. The child's ends are closed here either
    way."""
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
            user=who.uid,
            group=who.gid,
            extra_groups=who.groups,
        )
    except OSError as exc:
        raise SpawnError(f"cannot start {argv[0]!r}: {exc.strerror}") from None
    finally:
        outputs.close_child_ends()
