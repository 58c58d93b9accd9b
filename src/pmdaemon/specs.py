"""Turns raw configuration fields (as the CLI, the API and ecosystem files write them) into a
validated ProcessSpec. Every field's syntax is checked here and only here."""

from __future__ import annotations

import difflib
import os
import signal
from collections.abc import Callable, Mapping
from typing import Any

from pmdaemon.errors import InvalidInput
from pmdaemon.model import ProcessSpec, validate_name
from pmdaemon.ports import PortKind, parse_port_spec
from pmdaemon.units import parse_duration

MAX_STRING = 4096
MAX_ARGS = 1024
MAX_ENV = 16384
MAX_ENV_VALUE = 128 * 1024  # the kernel's limit for one environment string


def _string(field: str, value: Any, *, allow_empty: bool = False, limit: int = MAX_STRING) -> str:
    if not isinstance(value, str):
        raise InvalidInput(
            f"invalid {field}: expected a string, got {type(value).__name__}", {"field": field}
        )
    if not allow_empty and not value.strip():
        raise InvalidInput(f"invalid {field}: it must not be empty", {"field": field})
    if len(value) > limit or "\x00" in value:
        raise InvalidInput(
            f"invalid {field}: expected at most {limit} characters and no NUL byte",
            {"field": field},
        )
    return value


def _bool(field: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    raise InvalidInput(f"invalid {field} {value!r}: expected true or false", {"field": field})


def _count(field: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(
            f"invalid {field} {value!r}: expected an integer from {low} to {high}", {"field": field}
        )
    return value


def _args(field: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        import shlex

        try:
            value = shlex.split(value)
        except ValueError as exc:
            raise InvalidInput(f"invalid {field}: {exc}", {"field": field}) from None
    if not isinstance(value, list | tuple) or len(value) > MAX_ARGS:
        raise InvalidInput(
            f"invalid {field}: expected a list of at most {MAX_ARGS} strings", {"field": field}
        )
    return tuple(
        _string(field, str(v) if isinstance(v, int | float) else v, allow_empty=True) for v in value
    )


def _env(field: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or len(value) > MAX_ENV:
        raise InvalidInput(
            f"invalid {field}: expected a mapping of at most {MAX_ENV} variables", {"field": field}
        )
    env: dict[str, str] = {}
    for key, raw in value.items():
        if not isinstance(key, str) or not key or "=" in key or "\x00" in key:
            raise InvalidInput(
                f"invalid {field}: variable name {key!r} must be non-empty without '=' or NUL",
                {"field": field},
            )
        if isinstance(raw, bool):
            raw = "true" if raw else "false"
        elif isinstance(raw, int | float):
            raw = str(raw)
        elif raw is None:
            raw = ""
        env[key] = _string(f"{field}.{key[:64]}", raw, allow_empty=True, limit=MAX_ENV_VALUE)
    return env


def validate_env(value: Any, what: str) -> dict[str, str]:
    """An environment as the kernel accepts it: names without '=' or NUL, values without NUL."""
    return _env(what, value)


def _signal_name(field: str, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return signal.Signals(value).name
        except ValueError:
            pass
    if isinstance(value, str):
        name = value.upper()
        if not name.startswith("SIG"):
            name = "SIG" + name
        if name in signal.Signals.__members__:
            return name
    raise InvalidInput(
        f"invalid {field} {value!r}: expected a signal name such as SIGTERM, SIGINT or SIGQUIT",
        {"field": field},
    )


def _exit_codes(field: str, value: Any) -> tuple[int, ...]:
    if isinstance(value, int | str) and not isinstance(value, bool):
        value = [value] if isinstance(value, int) else [v for v in value.split(",") if v.strip()]
    if not isinstance(value, list | tuple) or len(value) > 256:
        raise InvalidInput(
            f"invalid {field}: expected a list of exit codes from 0 to 255", {"field": field}
        )
    return tuple(_count(field, v, 0, 255) for v in value)


def _duration(field: str, value: Any) -> float:
    return parse_duration(value, field)


def single_port(field: str, value: Any) -> int:
    spec = parse_port_spec(value, field)
    if spec.kind != PortKind.SINGLE:
        raise InvalidInput(
            f"invalid {field} {value!r}: port ranges and auto: ranges need several instances, "
            "which this version cannot run yet; give a single port such as 3000",
            {"field": field},
        )
    return spec.first


def _optional(parse: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    def parser(field: str, value: Any) -> Any:
        return None if value is None else parse(field, value)

    return parser


FIELDS: dict[str, Callable[[str, Any], Any]] = {
    "name": lambda f, v: validate_name(v),
    "script": _string,
    "args": _args,
    "interpreter": _optional(_string),
    "cwd": _string,
    "env": _env,
    "namespace": lambda f, v: validate_name(v) if v != "default" else v,
    "port": _optional(single_port),
    "autorestart": _bool,
    "max_restarts": lambda f, v: _count(f, v, 0, 1_000_000),
    "min_uptime": _duration,
    "restart_delay": _duration,
    "exp_backoff_restart_delay": _optional(_duration),
    "stop_exit_codes": _exit_codes,
    "kill_signal": _signal_name,
    "kill_timeout": _duration,
    "out_file": _optional(_string),
    "error_file": _optional(_string),
}


def suggest(field: str, known: list[str]) -> str:
    close = difflib.get_close_matches(field, known, n=1, cutoff=0.6)
    if not close:
        close = [k for k in known if k.startswith(field) or field.startswith(k)][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


def build_spec(raw: Mapping[str, Any], *, default_cwd: str) -> ProcessSpec:
    """Validate ``raw`` field by field and return the spec; raise InvalidInput on the first
    bad field (ecosystem files collect every error themselves)."""
    if not isinstance(raw, Mapping):
        raise InvalidInput("invalid process configuration: expected an object of fields")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        parse = FIELDS.get(key) if isinstance(key, str) else None
        if parse is None:
            raise InvalidInput(
                f"unknown field {key!r}{suggest(str(key), list(FIELDS))}", {"field": str(key)}
            )
        parsed = parse(key, value)
        if parsed is not None:
            values[key] = parsed
    if "script" not in values:
        raise InvalidInput(
            "missing field 'script': the program or file to run", {"field": "script"}
        )
    if "name" not in values:
        values["name"] = validate_name(default_name(values["script"]))
    cwd = values.get("cwd", default_cwd)
    values["cwd"] = os.path.normpath(os.path.join(default_cwd, os.path.expanduser(cwd)))
    return ProcessSpec(**values)


def default_name(script: str) -> str:
    """The stem of the script's first word: ``python3 -m x`` → ``python3``, ``app.py`` → ``app``."""
    first = script.strip().split()[0] if script.strip() else script
    stem = os.path.basename(first.rstrip("/"))
    base, ext = os.path.splitext(stem)
    return base if base and ext in SCRIPT_EXTENSIONS else stem


SCRIPT_EXTENSIONS = frozenset({".py", ".js", ".mjs", ".cjs", ".ts", ".sh", ".rb", ".pl", ".php"})
