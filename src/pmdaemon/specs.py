"""Turns raw configuration fields (as the CLI, the API and ecosystem files write them) into a
validated ProcessSpec. Every field's syntax is checked here and only here."""

from __future__ import annotations

import difflib
import math
import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from pmdaemon.errors import InvalidInput
from pmdaemon.logstamp import StampFormatError, compile_format
from pmdaemon.model import HealthCheck, ProcessSpec, validate_name
from pmdaemon.ports import PortKind, parse_port_spec
from pmdaemon.units import parse_duration, parse_size, shown, shown_key

MAX_STRING = 4096
MAX_ARGS = 1024
MAX_ENV = 16384
MAX_ENV_VALUE = 128 * 1024  # the kernel's limit for one environment string
MIN_LOG_SIZE = 1024


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
    raise InvalidInput(f"invalid {field} {shown(value)}: expected true or false", {"field": field})


def _count(field: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        value = int(value)  # 2.0 in a YAML or JSON file is 2
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(
            f"invalid {field} {shown(value)}: expected an integer from {low} to {high}",
            {"field": field},
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
        _string(field, scalar_text(field, v) if v is not None else v, allow_empty=True)
        for v in value
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
                f"invalid {field}: variable name {shown(key)} must be non-empty without '=' or NUL",
                {"field": field},
            )
        label = f"{field}.{shown_key(key)}"
        env[key] = _string(label, scalar_text(label, raw), allow_empty=True, limit=MAX_ENV_VALUE)
    return env


def validate_env(value: Any, what: str) -> dict[str, str]:
    """An environment as the kernel accepts it: names without '=' or NUL, values without NUL."""
    return _env(what, value)


def scalar_text(field: str, value: Any) -> str:
    """A scalar as the environment or argv writes it: booleans as true/false, numbers as
    written (finite only), strings as they are."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(
                f"invalid {field} {shown(value)}: expected a finite number", {"field": field}
            )
        return repr(value)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(
            f"invalid {field}: expected a string or number, got {type(value).__name__}",
            {"field": field},
        )
    return value


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
        f"invalid {field} {shown(value)}: expected a signal name such as SIGTERM or SIGINT",
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


def port_value(field: str, value: Any) -> int | str:
    """A single port as an integer; a range or auto range as its canonical string."""
    spec = parse_port_spec(value, field)
    return spec.first if spec.kind == PortKind.SINGLE else str(spec)


def check_instance_ports(instances: int, port: int | str | None, field: str = "port") -> None:
    """Ports for every instance, before anything starts: a single port serves one instance,
    a range must hold them all."""
    if port is None:
        return
    spec = parse_port_spec(port, field)
    if spec.kind == PortKind.SINGLE and instances > 1:
        raise InvalidInput(
            f"invalid {field} {shown(port)}: {instances} instances cannot share one port; give a "
            f'range such as "{spec.first}-{spec.first + instances - 1}"',
            {"field": field},
        )
    if spec.kind == PortKind.RANGE and spec.last - spec.first + 1 < instances:
        raise InvalidInput(
            f"invalid {field} {shown(port)}: {spec.last - spec.first + 1} port(s) for {instances} "
            f'instances; give at least "{spec.first}-{spec.first + instances - 1}"',
            {"field": field},
        )


def _log_size(field: str, value: Any) -> int:
    size = parse_size(value, field)
    if size < MIN_LOG_SIZE:
        raise InvalidInput(
            f"invalid {field} {shown(value)}: a log file rotates at 1K at the least",
            {"field": field},
        )
    return size


def _date_format(field: str, value: Any) -> str:
    text = _string(field, value)
    try:
        compile_format(text)
    except StampFormatError as exc:
        raise InvalidInput(f"invalid {field} {shown(value)}: {exc}", {"field": field}) from None
    return text


def _optional(parse: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    def parser(field: str, value: Any) -> Any:
        return None if value is None else parse(field, value)

    parser.nullable = True  # type: ignore[attr-defined]  # the schema allows null
    return parser


def _size(field: str, value: Any) -> int:
    return parse_size(value, field)


def _instances(field: str, value: Any) -> int:
    if value == "max":
        return os.cpu_count() or 1
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise InvalidInput(
            f'invalid {field} {shown(value)}: expected a number from 1 to 1024, or "max"',
            {"field": field},
        )
    return _count(field, value, 1, 1024)


HEALTH_FIELDS = ("type", "url", "script", "timeout", "interval", "retries", "enabled")
HEALTH_FORMS = (
    '{"type": "http", "url": "http://127.0.0.1:3000/health"} or '
    '{"type": "script", "script": "./check.sh"}, with timeout, interval, retries, enabled'
)


def _health_check(field: str, value: Any) -> HealthCheck:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"invalid {field}: expected {HEALTH_FORMS}", {"field": field})
    unknown = [k for k in value if k not in HEALTH_FIELDS]
    if unknown:
        label = f"{field}.{shown_key(str(unknown[0]), 40)}"
        raise InvalidInput(
            f"unknown field {label}{suggest(str(unknown[0]), list(HEALTH_FIELDS))}: accepted "
            + ", ".join(HEALTH_FIELDS),
            {"field": label},
        )
    kind = value.get("type") or (
        "http" if "url" in value else "script" if "script" in value else None
    )
    if kind not in ("http", "script"):
        raise InvalidInput(
            f"invalid {field}.type {shown(kind)}: expected http or script",
            {"field": f"{field}.type"},
        )
    target = value.get("url" if kind == "http" else "script")
    if not isinstance(target, str) or not target.strip():
        key = "url" if kind == "http" else "script"
        raise InvalidInput(
            f"missing {field}.{key}: a {kind} check needs one", {"field": f"{field}.{key}"}
        )
    if kind == "http" and not target.startswith(("http://", "https://")):
        raise InvalidInput(
            f"invalid {field}.url {shown(target)}: expected an http:// or https:// URL",
            {"field": f"{field}.url"},
        )
    check = (
        HealthCheck(type="http", url=target)
        if kind == "http"
        else HealthCheck(type="script", script=target)
    )
    replace: dict[str, Any] = {}
    for key, parse in (("timeout", _duration), ("interval", _duration)):
        if key in value:
            replace[key] = parse(f"{field}.{key}", value[key])
            if replace[key] <= 0:
                raise InvalidInput(
                    f"invalid {field}.{key}: it must be above zero", {"field": f"{field}.{key}"}
                )
    if "retries" in value:
        replace["retries"] = _count(f"{field}.retries", value["retries"], 1, 1000)
    if "enabled" in value:
        replace["enabled"] = _bool(f"{field}.enabled", value["enabled"])
    return msgspec.structs.replace(check, **replace)


@dataclass(frozen=True)
class Field:
    """One configuration field: how it is parsed, what JSON accepts, what it means."""

    parse: Callable[[str, Any], Any]
    schema: dict[str, Any]
    doc: str


DURATION_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?|\.\d+)(ms|s|m|h)?\s*$"},
        {"type": "number", "minimum": 0, "maximum": 366 * 24 * 3600 * 1000},
    ]
}
SIZE_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?|\.\d+)([kKmMgGtT]([iI]?[bB])?|[bB])?\s*$"},
        {"type": "integer", "minimum": 1, "maximum": 2**62},
    ]
}
PORT_SCHEMA = {
    "anyOf": [
        {"type": "integer", "minimum": 1, "maximum": 65535},
        {
            "type": "string",
            "pattern": r"^\s*(auto:)?[1-9]\d{0,4}-[1-9]\d{0,4}\s*$|^\s*[1-9]\d{0,4}\s*$",
        },
    ]
}
NAME_SCHEMA = {
    "type": "string",
    "pattern": r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$",
    "not": {"anyOf": [{"const": "all"}, {"pattern": r"^[0-9]+$"}]},
}
STRING = {"type": "string", "pattern": r"\S"}
BOOL = {
    "anyOf": [{"type": "boolean"}, {"enum": ["true", "false", "True", "False", "TRUE", "FALSE"]}]
}


def count_schema(low: int, high: int) -> dict[str, Any]:
    return {
        "anyOf": [
            {"type": "integer", "minimum": low, "maximum": high},
            {"type": "string", "pattern": r"^\s*[0-9]+\s*$"},
        ]
    }


ENV_SCHEMA = {
    "type": "object",
    "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
}
HEALTH_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "type": {"enum": ["http", "script"]},
        "url": STRING,
        "script": STRING,
        "timeout": DURATION_SCHEMA,
        "interval": DURATION_SCHEMA,
        "retries": {"type": "integer", "minimum": 1, "maximum": 1000},
        "enabled": BOOL,
    },
    "anyOf": [{"required": ["url"]}, {"required": ["script"]}],
    "allOf": [
        {
            "if": {"required": ["type"], "properties": {"type": {"const": "http"}}},
            "then": {"required": ["url"], "properties": {"url": {"pattern": "^https?://"}}},
        },
        {
            "if": {"required": ["type"], "properties": {"type": {"const": "script"}}},
            "then": {"required": ["script"]},
        },
    ],
}

FIELDS: dict[str, Field] = {
    "name": Field(
        lambda f, v: validate_name(v), NAME_SCHEMA, "unique name (default: the script's stem)"
    ),
    "script": Field(_string, STRING, "program on PATH, file, or a command line to split"),
    "args": Field(
        _args,
        {
            "anyOf": [
                {"type": "array", "items": {"type": ["string", "number", "boolean"]}},
                {"type": "string"},
            ]
        },
        "arguments",
    ),
    "interpreter": Field(_optional(_string), STRING, "program to run the script with"),
    "cwd": Field(_string, STRING, "working directory (relative to the file's directory)"),
    "env": Field(_env, ENV_SCHEMA, "extra environment variables"),
    "env_file": Field(_optional(_string), STRING, "a .env file read on every start"),
    "namespace": Field(
        lambda f, v: validate_name(v) if v != "default" else v,
        NAME_SCHEMA,
        "a label to group processes",
    ),
    "instances": Field(
        _instances,
        {"anyOf": [count_schema(1, 1024), {"const": "max"}]},
        "number of instances or max",
    ),
    "port": Field(
        _optional(port_value),
        PORT_SCHEMA,
        '3000, "3000-3003" (instance i gets 3000+i) or "auto:5000-5100"',
    ),
    "autorestart": Field(_bool, BOOL, "restart when it exits"),
    "max_restarts": Field(
        lambda f, v: _count(f, v, 0, 1_000_000),
        count_schema(0, 1_000_000),
        "unstable restarts before errored",
    ),
    "min_uptime": Field(_duration, DURATION_SCHEMA, "a shorter run is unstable"),
    "restart_delay": Field(_duration, DURATION_SCHEMA, "wait before each restart"),
    "exp_backoff_restart_delay": Field(
        _optional(_duration), DURATION_SCHEMA, "first restart delay, x1.5 per crash up to 15s"
    ),
    "stop_exit_codes": Field(
        _exit_codes,
        {
            "anyOf": [
                {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 255}},
                {"type": "integer", "minimum": 0, "maximum": 255},
                {"type": "string", "pattern": r"^\s*\d{1,3}\s*(,\s*\d{1,3}\s*)*,?\s*$"},
            ]
        },
        "exit codes that are not restarted",
    ),
    "kill_signal": Field(_signal_name, {"type": ["string", "integer"]}, "first signal on stop"),
    "kill_timeout": Field(_duration, DURATION_SCHEMA, "wait before SIGKILL"),
    "max_memory_restart": Field(
        _optional(_size), SIZE_SCHEMA, "restart when the process tree's RSS exceeds this"
    ),
    "health_check": Field(_optional(_health_check), HEALTH_SCHEMA, "HTTP or script check"),
    "wait_ready": Field(_bool, BOOL, "start waits until the app is ready"),
    "wait_timeout": Field(_duration, DURATION_SCHEMA, "how long start waits"),
    "out_file": Field(_optional(_string), STRING, "stdout log file"),
    "error_file": Field(_optional(_string), STRING, "stderr log file"),
    "time": Field(_bool, BOOL, "timestamp each log line"),
    "log_date_format": Field(
        _optional(_date_format),
        STRING,
        "timestamp format of log lines (moment.js tokens or strftime); enables timestamps",
    ),
    "max_log_size": Field(_log_size, SIZE_SCHEMA, "rotate a log file at this size (>= 1K)"),
    "max_log_files": Field(
        lambda f, v: _count(f, v, 1, 1000),
        count_schema(1, 1000),
        "rotated files kept",
    ),
}

# Flat spellings of the health check, folded into `health_check`.
FLAT_HEALTH = {
    "health_check_url": "url",
    "health_check_script": "script",
    "health_check_timeout": "timeout",
    "health_check_interval": "interval",
    "health_check_retries": "retries",
}
for _flat in FLAT_HEALTH:
    FIELDS[_flat] = Field(
        lambda f, v: v,
        DURATION_SCHEMA
        if _flat.endswith(("timeout", "interval"))
        else {"type": "integer", "minimum": 1}
        if _flat.endswith("retries")
        else STRING,
        f"flat form of health_check.{FLAT_HEALTH[_flat]}",
    )

# Fields accepted and validated but not acting in this version, with the warning that says
# so (none at present: every field acts).
INERT_FIELDS: dict[str, str] = {}


def inert_warnings(raw: Mapping[str, Any]) -> list[str]:
    seen: list[str] = []
    keys = set(raw) | ({"health_check"} if any(k in raw for k in FLAT_HEALTH) else set())
    for key in sorted(keys):
        note = INERT_FIELDS.get(key)
        if note and raw.get(key, True) not in (False, None) and note not in seen:
            seen.append(note)
    return seen


def suggest(field: str, known: list[str]) -> str:
    close = difflib.get_close_matches(field, known, n=1, cutoff=0.6)
    if not close:
        close = [k for k in known if k.startswith(field) or field.startswith(k)][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


def fold_health(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Flat ``health_check_*`` fields merged into the nested ``health_check`` object."""
    values = dict(raw)
    flat = {FLAT_HEALTH[k]: values.pop(k) for k in list(values) if k in FLAT_HEALTH}
    if flat:
        nested = values.get("health_check")
        merged = dict(nested) if isinstance(nested, Mapping) else {}
        merged.update(flat)
        values["health_check"] = merged
    return values


def build_spec(raw: Mapping[str, Any], *, default_cwd: str) -> ProcessSpec:
    """Validate ``raw`` field by field and return the spec; raise InvalidInput on the first
    bad field (ecosystem files collect every error themselves)."""
    if not isinstance(raw, Mapping):
        raise InvalidInput("invalid process configuration: expected an object of fields")
    values: dict[str, Any] = {}
    for key, value in fold_health(raw).items():
        field = FIELDS.get(key) if isinstance(key, str) else None
        if field is None:
            raise InvalidInput(
                f"unknown field {str(key)[:40]!r}{suggest(str(key), list(FIELDS))}",
                {"field": str(key)[:40]},
            )
        parsed = field.parse(key, value)
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
    instances = values.get("instances", 1)
    if instances > 1 and len(values["name"]) + 1 + len(str(instances - 1)) > 64:
        raise InvalidInput(
            f"invalid name {shown(values['name'])}: with {instances} instances the names "
            f"{values['name']}-0 ... would be longer than 64 characters",
            {"field": "name"},
        )
    check_instance_ports(instances, values.get("port"))
    return ProcessSpec(**values)


def default_name(script: str) -> str:
    """The stem of the script's first word: ``python3 -m x`` → ``python3``, ``app.py`` → ``app``."""
    first = script.strip().split()[0] if script.strip() else script
    stem = os.path.basename(first.rstrip("/"))
    base, ext = os.path.splitext(stem)
    return base if base and ext in SCRIPT_EXTENSIONS else stem


SCRIPT_EXTENSIONS = frozenset({".py", ".js", ".mjs", ".cjs", ".ts", ".sh", ".rb", ".pl", ".php"})
