"""Turns raw configuration fields (as the CLI, the API and ecosystem files write them) into a
validated ProcessSpec. Every field's syntax is checked here and only here."""

from __future__ import annotations

import difflib
import math
import os
import re
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from pmdaemon.errors import InvalidInput
from pmdaemon.interpolate import VARIABLE
from pmdaemon.logstamp import StampFormatError, compile_format
from pmdaemon.model import HealthCheck, ProcessSpec, validate_name
from pmdaemon.patterns import any_case, decimal_at_most, decimal_between, positive, uint
from pmdaemon.ports import PortKind, parse_port_spec
from pmdaemon.units import MAX_DURATION, parse_duration, parse_size, shown, shown_key

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
    """A single port as an integer; a range or auto range as its canonical string. The
    object ``{"start": 3000, "max": 3010}`` of PMDaemon's clustering examples is the range
    3000-3010 (instance i gets start + i; an increment other than 1 is refused)."""
    if isinstance(value, Mapping):
        value = _port_object(field, value)
    spec = parse_port_spec(value, field)
    return spec.first if spec.kind == PortKind.SINGLE else str(spec)


def _port_object(field: str, value: Mapping[str, Any]) -> str:
    forms = '{"start": 3000, "max": 3010} (with "increment": 1 at most)'
    unknown = sorted(str(k) for k in value if k not in ("start", "max", "increment"))
    if unknown or "start" not in value or "max" not in value:
        raise InvalidInput(
            f"invalid {field} {shown(dict(value))}: expected {forms}", {"field": field}
        )
    increment = value.get("increment", 1)
    if increment != 1 or isinstance(increment, bool):
        raise InvalidInput(
            f"invalid {field}.increment {shown(increment)}: only 1 is supported (instance i "
            f"gets start + i); expected {forms}",
            {"field": field},
        )
    start, last = value["start"], value["max"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, last)):
        raise InvalidInput(
            f"invalid {field} {shown(dict(value))}: expected {forms}", {"field": field}
        )
    return f"{start}-{last}"


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


NEGATIVE_INSTANCES = r"-(?:[1-9][0-9]{0,2}|10[01][0-9]|102[0-4])"  # -1 to -1024


def cpu_count() -> int:
    """The CPUs this process may run on (a container's cpuset, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except OSError:
        return os.cpu_count() or 1


def _instances(field: str, value: Any) -> int:
    """A number of instances; ``max`` is the CPU count, -N (PM2) the CPU count less N (at
    least one), 0 (PMDaemon's meaning) an app that is created but not started (as
    ``enabled: false``; PM2's apps get ``max`` for 0 from the file loader)."""
    if value == "max":
        return cpu_count()
    if isinstance(value, str) and re.fullmatch(rf"\s*{NEGATIVE_INSTANCES}\s*", value):
        value = int(value)  # PM2 reads a string with parseInt
    if isinstance(value, int) and not isinstance(value, bool) and -1024 <= value < 0:
        return max(1, cpu_count() + value)
    if isinstance(value, str) and not (value.strip().isascii() and value.strip().isdigit()):
        raise InvalidInput(
            f"invalid {field} {shown(value)}: expected a number from 0 (created, not started) "
            'to 1024, -1 (one per CPU but one), or "max"',
            {"field": field},
        )
    try:
        return _count(field, value, 0, 1024)
    except InvalidInput:
        raise InvalidInput(
            f"invalid {field} {shown(value)}: expected a number from 0 (created, not started) "
            'to 1024, -1 (one per CPU but one), or "max"',
            {"field": field},
        ) from None


def _max_restarts(field: str, value: Any) -> int | None:
    """A count of unstable restarts, or ``unlimited`` (None)."""
    if isinstance(value, str) and value.strip().lower() in ("unlimited", "infinite"):
        return None
    try:
        return _count(field, value, 0, 1_000_000)
    except InvalidInput:
        raise InvalidInput(
            f"invalid {field} {shown(value)}: expected an integer from 0 to 1000000, or unlimited",
            {"field": field},
        ) from None


EXEC_MODES = {"fork": "fork", "fork_mode": "fork", "cluster": "cluster", "cluster_mode": "cluster"}


def _exec_mode(field: str, value: Any) -> str:
    """fork or cluster (PM2 also writes fork_mode, cluster_mode). Every instance is a
    process of its own either way; a cluster is what ``instances`` > 1 makes."""
    if isinstance(value, str) and value.strip().lower() in EXEC_MODES:
        return EXEC_MODES[value.strip().lower()]
    raise InvalidInput(
        f"invalid {field} {shown(value)}: expected fork or cluster", {"field": field}
    )


def _watch(field: str, value: Any) -> tuple[str, ...]:
    """What to watch, relative to the app's cwd: true (or PM2's empty list) is the cwd
    itself, a path or a list of paths; false or null is no watching."""
    if value is None or value is False:
        return ()
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        value = value.strip().lower() == "true"  # as PMDaemon's docs write it
        if not value:
            return ()
    if value is True:
        return (".",)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or len(value) > 256:
        raise InvalidInput(
            f"invalid {field} {shown(value)}: expected true, false, a path or a list of at "
            "most 256 paths",
            {"field": field},
        )
    return tuple(_string(field, v) for v in value) or (".",)


def _patterns(field: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or len(value) > 1024:
        raise InvalidInput(
            f"invalid {field} {shown(value)}: expected a pattern or a list of at most 1024",
            {"field": field},
        )
    return tuple(_string(field, v) for v in value)


def _cron(field: str, value: Any) -> str | None:
    """A cron expression (PM2's syntax); 0 or "0" is none, as PM2 reads it."""
    if value is None or value == 0 or value == "0":
        return None
    from pmdaemon import cron

    if not isinstance(value, str) or not value.strip() or len(value) > 256:
        raise InvalidInput(
            f"invalid {field} {shown(value)}: expected a cron expression such as '0 3 * * *'",
            {"field": field},
        )
    try:
        cron.parse(value)
    except cron.CronError as exc:
        raise InvalidInput(f"invalid {field} {shown(value)}: {exc}", {"field": field}) from None
    return value.strip()


def _filter_env(field: str, value: Any) -> bool | tuple[str, ...]:
    """PM2's filter_env: true keeps none of the captured environment; a name or a list of
    names drops the captured variables whose names contain one of them."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list | tuple) and len(value) <= 1024:
        return tuple(_string(field, v) for v in value)
    raise InvalidInput(
        f"invalid {field} {shown(value)}: expected true, false, or a list of names",
        {"field": field},
    )


def _log_type(field: str, value: Any) -> str | None:
    """json, or any other string (PM2 takes any, and only json changes anything)."""
    if value is None:
        return None
    text = _string(field, value, allow_empty=True)
    return "json" if text.strip().lower() == "json" else None


def _log_file(field: str, value: Any) -> str | bool | None:
    """A path, or true for <name>.log beside the other log files (false: none)."""
    if value is True:
        return True
    if value is False or value is None:
        return None
    return _string(field, value)


def _account(field: str, value: Any) -> str:
    """A user or group: a name as /etc/passwd writes it, or a numeric id."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32:
        return str(value)
    if isinstance(value, str) and ACCOUNT.fullmatch(value):
        return value
    raise InvalidInput(
        f"invalid {field} {shown(value)}: expected a {field} name (letters, digits, '_', '.', "
        "'-', up to 32 characters) or a numeric id",
        {"field": field},
    )


def _env_name(field: str, value: Any) -> str:
    if isinstance(value, str) and ENV_NAME.fullmatch(value):
        return value
    raise InvalidInput(
        f"invalid {field} {shown(value)}: expected an environment variable name "
        "(letters, digits and '_', not starting with a digit)",
        {"field": field},
    )


def _variable(field: str, value: Any) -> str:
    """Any name the environment can hold (PM2 takes monitor-backend too)."""
    if isinstance(value, str) and value and len(value) <= 128 and not set(value) & {"=", "\x00"}:
        return value
    raise InvalidInput(
        f"invalid {field} {shown(value)}: expected a variable name (1 to 128 characters, no '=')",
        {"field": field},
    )


def _labels(field: str, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or len(value) > 256:
        raise InvalidInput(
            f"invalid {field}: expected a mapping of at most 256 names to strings",
            {"field": field},
        )
    labels: dict[str, str] = {}
    for key, raw in value.items():
        if not isinstance(key, str) or LABEL_KEY.fullmatch(key) is None:
            raise InvalidInput(
                f"invalid {field}: label name {shown(key)} must be 1 to 63 letters, digits, "
                "'_', '.', '-' or '/'",
                {"field": field},
            )
        label = f"{field}.{shown_key(key)}"
        labels[key] = _string(label, scalar_text(label, raw), allow_empty=True, limit=256)
    return labels


def _loose(*kinds: str) -> Callable[[str, Any], Any]:
    """A field that is read for a warning only: its value need only have a plausible type
    (``string``, ``bool``, ``list``, ``object``, ``number``)."""
    checks = {
        "string": lambda v: isinstance(v, str),
        "bool": lambda v: isinstance(v, bool),
        "list": lambda v: isinstance(v, list | tuple),
        "object": lambda v: isinstance(v, Mapping),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    }
    names = {
        "string": "a string",
        "bool": "true or false",
        "list": "a list",
        "object": "an object",
        "number": "a number",
    }

    def parse(field: str, value: Any) -> Any:
        if value is None or any(checks[k](value) for k in kinds):
            return value
        expected = " or ".join(names[k] for k in kinds)
        raise InvalidInput(f"invalid {field} {shown(value)}: expected {expected}", {"field": field})

    return parse


ACCOUNT = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?|[0-9]{1,10}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
LABEL_KEY = re.compile(r"[A-Za-z0-9_./-]{1,63}")


HEALTH_FIELDS = ("type", "check_type", "url", "script", "timeout", "interval", "retries", "enabled")
HEALTH_FORMS = (
    '{"type": "http", "url": "http://127.0.0.1:3000/health"} or '
    '{"type": "script", "script": "./check.sh"}, with timeout, interval, retries, enabled'
)
HEALTH_DURATION_FORMS = (
    "a duration like 500ms, 5s or 1m (a bare number means seconds, as PMDaemon documents)"
)


def health_duration(field: str, value: Any) -> float:
    """A health check's timeout or interval: a bare number is seconds (PMDaemon's
    ``"timeout": 10``), a string with a unit is read as every duration is; above zero."""
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        value = float(value.strip())
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
        if not (math.isfinite(seconds) and 0 < seconds <= MAX_DURATION):
            raise InvalidInput(
                f"invalid {field} {shown(value)}: expected {HEALTH_DURATION_FORMS}, above zero "
                "and at most a year",
                {"field": field},
            )
        return seconds
    try:
        seconds = parse_duration(value, field)
    except InvalidInput:
        raise InvalidInput(
            f"invalid {field} {shown(value)}: expected {HEALTH_DURATION_FORMS}",
            {"field": field},
        ) from None
    if not 0 < seconds <= MAX_DURATION:
        raise InvalidInput(
            f"invalid {field} {shown(value)}: it must be above zero and at most a year",
            {"field": field},
        )
    return seconds


_NUMBER = re.compile(r"(\d+(\.\d+)?|\.\d+)")


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
    if "type" in value and "check_type" in value and value["type"] != value["check_type"]:
        raise InvalidInput(
            f"invalid {field}: type {shown(value['type'])} and check_type "
            f"{shown(value['check_type'])} disagree (check_type is PMDaemon's name for type)",
            {"field": f"{field}.check_type"},
        )
    key = "type" if "type" in value else "check_type"
    inferred = "http" if "url" in value else "script" if "script" in value else None
    kind = value.get(key, inferred)  # a type given as null is not inferred
    if kind not in ("http", "script"):
        raise InvalidInput(
            f"invalid {field}.{key} {shown(kind)}: expected http or script",
            {"field": f"{field}.{key}"},
        )
    target = value.get("url" if kind == "http" else "script")
    if not isinstance(target, str) or not target.strip():
        key = "url" if kind == "http" else "script"
        raise InvalidInput(
            f"missing {field}.{key}: a {kind} check needs one", {"field": f"{field}.{key}"}
        )
    if len(target) > MAX_STRING or "\x00" in target:
        key = "url" if kind == "http" else "script"
        raise InvalidInput(
            f"invalid {field}.{key}: expected at most {MAX_STRING} characters and no NUL byte",
            {"field": f"{field}.{key}"},
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
    for key in ("timeout", "interval"):
        if key in value:
            replace[key] = health_duration(f"{field}.{key}", value[key])
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


YEAR_MS = int(MAX_DURATION * 1000)
_WS = r"\s*"


def _anchored(body: str) -> str:
    return rf"^{_WS}(?:{body}){_WS}$"


DURATION_SCHEMA = {
    "anyOf": [
        {
            "type": "string",
            "pattern": _anchored(
                "|".join(
                    rf"{decimal_at_most(YEAR_MS // scale)}{unit}"
                    for unit, scale in (("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000))
                )
                + f"|{decimal_at_most(YEAR_MS)}"
            ),
        },
        {"type": "number", "minimum": 0, "maximum": YEAR_MS},
    ]
}
HEALTH_DURATION_SCHEMA = {
    "anyOf": [
        {
            "type": "string",
            "pattern": _anchored(
                "|".join(
                    positive(decimal_at_most(int(MAX_DURATION) * 1000 // scale)) + unit
                    for unit, scale in (("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000))
                )
                + "|"
                + positive(decimal_at_most(int(MAX_DURATION)))
            ),
        },
        {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_DURATION},
    ]
}
_SIZE_UNITS = (("", 0), ("k", 10), ("m", 20), ("g", 30), ("t", 40))


def size_schema(minimum: int) -> dict[str, Any]:
    """Sizes as parse_size reads them, from ``minimum`` bytes (1 or 1024) to 2**62."""
    forms = []
    for unit, shift in _SIZE_UNITS:
        top = 2 ** (62 - shift)
        if unit == "":
            number = decimal_between(str(minimum), top)
            forms.append(f"{number}[bB]?")
            continue
        low = "1" if unit == "k" and minimum >= 1024 else "0.001"
        forms.append(f"{decimal_between(low, top)}{any_case(unit)}(?:[iI]?[bB])?")
    return {
        "anyOf": [
            {"type": "string", "pattern": _anchored("|".join(forms))},
            {"type": "integer", "minimum": minimum, "maximum": 2**62},
        ]
    }


SIZE_SCHEMA = size_schema(1)
PORT_NUMBER = uint(1, 65535)
PORT_SCHEMA = {
    "anyOf": [
        {"type": "integer", "minimum": 1, "maximum": 65535},
        {
            "type": "string",
            "pattern": _anchored(f"(?:auto:)?{PORT_NUMBER}-{PORT_NUMBER}|{PORT_NUMBER}"),
        },
        {
            "type": "object",
            "required": ["start", "max"],
            "additionalProperties": False,
            "properties": {
                "start": {"type": "integer", "minimum": 1, "maximum": 65535},
                "max": {"type": "integer", "minimum": 1, "maximum": 65535},
                "increment": {"const": 1},
            },
        },
    ]
}
# A file may also write a port as a reference, "${WEB_PORTS:-8080-8081}": the loader checks
# the value once it is substituted (the API takes no references).
FILE_PORT_SCHEMA = {"anyOf": [*PORT_SCHEMA["anyOf"], {"type": "string", "pattern": VARIABLE}]}
NAME_SCHEMA = {
    "type": "string",
    "pattern": r"^[A-Za-z0-9_](?:[A-Za-z0-9_.:@+ -]{0,62}[A-Za-z0-9_.:@+-])?$",
    "not": {"anyOf": [{"const": "all"}, {"pattern": r"^[0-9]+$"}]},
}
STRING = {"type": "string", "maxLength": MAX_STRING, "pattern": r"^[^\x00]*[^\x00\s][^\x00]*$"}
ANY_STRING = {"type": "string", "maxLength": MAX_STRING, "pattern": r"^[^\x00]*$"}
BOOL = {
    "anyOf": [
        {"type": "boolean"},
        {"type": "string", "pattern": f"^(?:{any_case('true')}|{any_case('false')})$"},
    ]
}


def count_schema(low: int, high: int) -> dict[str, Any]:
    return {
        "anyOf": [
            {"type": "integer", "minimum": low, "maximum": high},
            {"type": "string", "pattern": _anchored(uint(low, high))},
        ]
    }


ENV_SCHEMA = {
    "type": "object",
    "maxProperties": MAX_ENV,
    "propertyNames": {"pattern": r"^[^=\x00]+$"},
    "additionalProperties": {
        "anyOf": [
            {"type": ["number", "boolean", "null"]},
            {"type": "string", "maxLength": MAX_ENV_VALUE, "pattern": r"^[^\x00]*$"},
        ]
    },
}
ARGS_SCHEMA = {
    "anyOf": [
        {
            "type": "array",
            "maxItems": MAX_ARGS,
            "items": {"anyOf": [{"type": ["number", "boolean"]}, ANY_STRING]},
        },
        {"type": "string"},
    ]
}
HEALTH_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "type": {"enum": ["http", "script"]},
        "check_type": {"enum": ["http", "script"]},
        "url": {**STRING, "pattern": r"^https?://[^\x00]*$"},
        "script": STRING,
        "timeout": HEALTH_DURATION_SCHEMA,
        "interval": HEALTH_DURATION_SCHEMA,
        "retries": count_schema(1, 1000),
        "enabled": BOOL,
    },
    "anyOf": [{"required": ["url"]}, {"required": ["script"]}],
    # A kind named by type or check_type (or both, agreeing) needs its target.
    "allOf": [
        {
            "if": {
                "anyOf": [
                    {"required": [key], "properties": {key: {"const": kind}}}
                    for key in ("type", "check_type")
                ]
            },
            "then": {
                "required": [target],
                "properties": {"type": {"const": kind}, "check_type": {"const": kind}},
            },
        }
        for kind, target in (("http", "url"), ("script", "script"))
    ],
}
SIGNALS = sorted(signal.Signals.__members__)
SIGNAL_SCHEMA = {
    "anyOf": [
        {
            "type": "string",
            "pattern": "^(?:"
            + any_case("sig")
            + ")?(?:"
            + "|".join(any_case(n[3:]) for n in SIGNALS)
            + ")$",
        },
        {"enum": sorted({int(s) for s in signal.Signals})},
    ]
}
_EXIT_CODE = rf"\s*{uint(0, 255)}"
EXIT_CODES_SCHEMA = {
    "anyOf": [
        {
            "type": "array",
            "maxItems": 256,
            "items": {
                "anyOf": [
                    {"type": "integer", "minimum": 0, "maximum": 255},
                    {"type": "string", "pattern": _anchored(uint(0, 255))},
                ]
            },
        },
        {"type": "integer", "minimum": 0, "maximum": 255},
        {
            "type": "string",
            "pattern": rf"^[\s,]*(?:{_EXIT_CODE}\s*,[\s,]*)*(?:{_EXIT_CODE}\s*)?$",
        },
    ]
}
LABELS_SCHEMA = {
    "type": "object",
    "maxProperties": 256,
    "propertyNames": {"pattern": r"^[A-Za-z0-9_./-]{1,63}$"},
    "additionalProperties": {
        "anyOf": [
            {"type": ["number", "boolean", "null"]},
            {"type": "string", "maxLength": 256, "pattern": r"^[^\x00]*$"},
        ]
    },
}
ACCOUNT_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"^(?:[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?|[0-9]{1,10})$"},
        {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
    ]
}
ENV_NAME_SCHEMA = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"}
LOG_TYPE_SCHEMA = {"anyOf": [ANY_STRING, {"type": "null"}]}
# The shape of a cron expression (its values' ranges are the loader's to check).
_CRON_ITEM = r"[-0-9A-Za-z*?,/]+"
CRON_PATTERN = (
    r"^\s*(?:"
    + "|".join(any_case(n) for n in ("@yearly", "@annually", "@monthly", "@weekly", "@daily"))
    + "|"
    + "|".join(any_case(n) for n in ("@midnight", "@hourly"))
    + rf"|{_CRON_ITEM}(?:\s+{_CRON_ITEM}){{4,5}})\s*$"
)


FIELDS: dict[str, Field] = {
    "name": Field(
        lambda f, v: validate_name(v), NAME_SCHEMA, "unique name (default: the script's stem)"
    ),
    "script": Field(_string, STRING, "program on PATH, file, or a command line to split"),
    "args": Field(_args, ARGS_SCHEMA, "arguments (a list, or one string split like a shell)"),
    "interpreter": Field(_optional(_string), STRING, "program to run the script with"),
    "interpreter_args": Field(
        _args, ARGS_SCHEMA, "arguments for the interpreter, before the script (node_args)"
    ),
    "cwd": Field(_string, STRING, "working directory (relative to the file's directory)"),
    "env": Field(_env, ENV_SCHEMA, "extra environment variables"),
    "env_file": Field(_optional(_string), STRING, "a .env file read on every start"),
    "namespace": Field(
        lambda f, v: validate_name(v) if v != "default" else v,
        NAME_SCHEMA,
        "a label to group processes",
    ),
    "labels": Field(_labels, LABELS_SCHEMA, "name: value labels, shown by info and the API"),
    "instances": Field(
        _instances,
        {
            "anyOf": [
                count_schema(0, 1024),
                {"type": "integer", "minimum": -1024, "maximum": -1},
                {"type": "string", "pattern": rf"^\s*{NEGATIVE_INSTANCES}\s*$"},
                {"const": "max"},
            ]
        },
        "number of instances, max (the CPU count), -N (the CPU count less N), or 0: created "
        "but not started (in a PM2 app: one per CPU)",
    ),
    "exec_mode": Field(
        _exec_mode,
        {
            "type": "string",
            "pattern": _anchored("|".join(any_case(mode) for mode in sorted(EXEC_MODES))),
        },
        "fork or cluster: each instance is a process of its own either way",
    ),
    "enabled": Field(_bool, BOOL, "false: the app is created but not started"),
    "port": Field(
        _optional(port_value),
        FILE_PORT_SCHEMA,
        '3000, "3000-3003" (instance i gets 3000+i), "auto:5000-5100", or {start, max}; '
        "a ${VAR:-default} reference is checked once substituted",
    ),
    "increment_var": Field(
        _optional(_env_name),
        ENV_NAME_SCHEMA,
        "a variable of env that instance i gets plus i (PORT: the instances' ports)",
    ),
    "instance_var": Field(
        _optional(_variable),
        {"type": "string", "minLength": 1, "maxLength": 128, "pattern": r"^[^=\x00]+$"},
        "another variable that holds the instance index",
    ),
    "autorestart": Field(_bool, BOOL, "restart when it exits"),
    "max_restarts": Field(
        _max_restarts,
        {
            "anyOf": [
                count_schema(0, 1_000_000),
                {
                    "type": "string",
                    "pattern": "^"
                    + _WS
                    + "(?:"
                    + any_case("unlimited")
                    + "|"
                    + any_case("infinite")
                    + ")"
                    + _WS
                    + "$",
                },
            ]
        },
        "unstable restarts before errored, or unlimited",
    ),
    "min_uptime": Field(_duration, DURATION_SCHEMA, "a shorter run is unstable"),
    "restart_delay": Field(_duration, DURATION_SCHEMA, "wait before each restart"),
    "exp_backoff_restart_delay": Field(
        _optional(_duration), DURATION_SCHEMA, "first restart delay, x1.5 per crash up to 15s"
    ),
    "stop_exit_codes": Field(_exit_codes, EXIT_CODES_SCHEMA, "exit codes that are not restarted"),
    "kill_signal": Field(_signal_name, SIGNAL_SCHEMA, "first signal on stop"),
    "kill_timeout": Field(_duration, DURATION_SCHEMA, "wait before SIGKILL"),
    "max_memory_restart": Field(
        _optional(_size), SIZE_SCHEMA, "restart when the process tree's RSS exceeds this"
    ),
    "user": Field(
        _optional(_account), ACCOUNT_SCHEMA, "run as this user (the daemon must be root)"
    ),
    "group": Field(
        _optional(_account), ACCOUNT_SCHEMA, "run with this group (default: the user's)"
    ),
    "health_check": Field(_optional(_health_check), HEALTH_SCHEMA, "HTTP or script check"),
    "wait_ready": Field(_bool, BOOL, "start waits until the app is ready"),
    "wait_timeout": Field(_duration, DURATION_SCHEMA, "how long start waits"),
    "out_file": Field(_optional(_string), STRING, "stdout log file"),
    "error_file": Field(_optional(_string), STRING, "stderr log file"),
    "log_file": Field(
        _log_file,
        {"anyOf": [STRING, {"type": "boolean"}, {"type": "null"}]},
        "a log file with stdout and stderr together (true: <name>.log with the others)",
    ),
    "log_type": Field(
        _log_type,
        LOG_TYPE_SCHEMA,
        "json: each log line written as a JSON object (message, timestamp, type, app)",
    ),
    "disable_logs": Field(_bool, BOOL, "true: the app's output is not kept"),
    "merge_logs": Field(_bool, BOOL, "the instances of a cluster share one set of log files"),
    "pid_file": Field(_optional(_string), STRING, "a file that holds the PID of the current run"),
    "watch": Field(
        _watch,
        {
            "anyOf": [
                {"type": ["boolean", "null"]},
                STRING,
                {"type": "array", "maxItems": 256, "items": STRING},
            ]
        },
        "restart when files change: true (the cwd), a path, or a list of paths",
    ),
    "ignore_watch": Field(
        _patterns,
        {"anyOf": [STRING, {"type": "array", "maxItems": 1024, "items": STRING}]},
        "paths, globs or regular expressions that watch passes over",
    ),
    "watch_delay": Field(_duration, DURATION_SCHEMA, "wait after a burst of changes"),
    "cron_restart": Field(
        _optional(_cron),
        {
            "anyOf": [
                {"const": 0},
                {"const": "0"},
                {"const": False},
                {"type": "null"},
                {"type": "string", "maxLength": 256, "pattern": CRON_PATTERN},
            ]
        },
        "a cron expression: restart (or run a one-shot job) on that schedule",
    ),
    "filter_env": Field(
        _filter_env,
        {
            "anyOf": [
                {"type": "boolean"},
                STRING,
                {"type": "array", "maxItems": 1024, "items": STRING},
            ]
        },
        "true: none of the captured environment; names: drop variables containing them",
    ),
    "time": Field(_bool, BOOL, "timestamp each log line"),
    "log_date_format": Field(
        _optional(_date_format),
        STRING,
        "timestamp format of log lines (moment.js tokens or strftime); enables timestamps",
    ),
    "max_log_size": Field(
        _log_size, size_schema(MIN_LOG_SIZE), "rotate a log file at this size (>= 1K)"
    ),
    "max_log_files": Field(
        lambda f, v: _count(f, v, 1, 1000),
        count_schema(1, 1000),
        "rotated files kept",
    ),
}

# Fields PMDaemon's or PM2's files carry that do nothing here (yet): accepted and checked
# loosely, dropped from the spec, and each named by one warning when it asks for something.
INERT_FIELDS: dict[str, tuple[Callable[[str, Any], Any], dict[str, Any], str]] = {
    "depends_on": (
        _loose("list", "object", "string"),
        {"type": ["array", "object", "string"]},
        "depends_on is not implemented yet: the apps start together, in no particular order",
    ),
    "compress_logs": (
        _loose("bool"),
        {"type": "boolean"},
        "compress_logs is not implemented: rotated log files are kept uncompressed",
    ),
    "rotation_schedule": (
        _loose("string"),
        {"type": "string"},
        "rotation_schedule is not implemented: log files rotate by size (max_log_size)",
    ),
    "weight": (
        _loose("number"),
        {"type": "number"},
        "weight is not used: pmdaemon does not balance traffic between apps",
    ),
    "monitoring": (
        _loose("object"),
        {"type": "object"},
        "monitoring settings are not read: every app's CPU and memory are always sampled "
        "(GET /metrics, monit, the dashboard)",
    ),
    "docker": (
        _loose("object"),
        {"type": "object"},
        "docker settings are not read: pmdaemon runs processes, not containers",
    ),
    # PM2's fields for its own machinery (schema.json): accepted, and when a value asks for
    # something, a warning says why it does nothing here.
    "watch_options": (
        _loose("object"),
        {"type": "object"},
        "watch_options are chokidar's (PM2's watcher): pmdaemon watches with inotify, with "
        "ignore_watch and watch_delay",
    ),
    "append_env_to_name": (_loose("bool"), {"type": "boolean"}, ""),  # read by the file loader
    "name_prefix": (_loose("string"), {"type": "string"}, ""),
    "username": (_loose("string"), {"type": "string"}, ""),  # PM2 fills it in itself
    "install_url": (_loose("string"), {"type": "string"}, ""),
    "windowsHide": (_loose("bool"), {"type": "boolean"}, ""),
    "kill_retry_time": (_loose("number"), {"type": "number"}, ""),  # exits are not polled here
    "execute_command": (_loose("bool"), {"type": "boolean"}, ""),
    "write": (_loose("bool"), {"type": "boolean"}, ""),
    "source_map_support": (
        _loose("bool"),
        {"type": "boolean"},
        "source_map_support is a Node.js loader option of PM2's: give node "
        "--enable-source-maps in node_args instead",
    ),
    "disable_source_map_support": (_loose("bool"), {"type": "boolean"}, ""),
    "shutdown_with_message": (
        _loose("bool"),
        {"type": "boolean"},
        "shutdown_with_message needs PM2's IPC channel: pmdaemon stops apps with kill_signal",
    ),
    "vizion": (
        _loose("bool"),
        {"type": "boolean"},
        "vizion: pmdaemon does not record version control metadata",
    ),
    "post_update": (
        _loose("list"),
        {"type": "array"},
        "post_update belongs to PM2's deploy and Keymetrics: pmdaemon does not deploy",
    ),
    "force": (
        _loose("bool"),
        {"type": "boolean"},
        "force: an app name is never started twice here; delete it first or use apply",
    ),
    "treekill": (
        _loose("bool"),
        {"type": "boolean"},
        "",  # true is what happens; false gets its own warning (inert_warnings)
    ),
    **{
        key: (
            _loose("bool", "string") if key == "pmx" else _loose("bool"),
            {"type": ["boolean", "string"]} if key == "pmx" else {"type": "boolean"},
            f"{key} is a PM2.io (APM) option: pmdaemon has no agent in the app; use its "
            "/metrics endpoint",
        )
        for key in (
            "pmx",
            "automation",
            "trace",
            "disable_trace",
            "v8",
            "event_loop_inspector",
            "deep_monitoring",
        )
    },
    "io": (
        _loose("object"),
        {"type": "object"},
        "io is a PM2.io (APM) option: pmdaemon has no agent in the app; use its /metrics endpoint",
    ),
}
# Values of inert fields that ask for something other than what pmdaemon does.
INERT_FALSE_WARNINGS = {
    "treekill": "treekill: false is not honoured: a stop always ends the app's whole process "
    "tree, so nothing it started escapes",
}
# PM2 defaults that are true: saying so asks for nothing.
INERT_QUIET_TRUE = {"pmx", "automation", "disable_trace", "vizion"}

# Another spelling of a field (folded into it) and the nested `log` group of PMDaemon's docs.
FIELD_ALIASES = {
    "node_args": "interpreter_args",
    "interpreterArgs": "interpreter_args",
    "combine_logs": "merge_logs",
    "exec_interpreter": "interpreter",
    "error": "error_file",
    "err": "error_file",
    "err_file": "error_file",
    "err_log": "error_file",
    "output": "out_file",
    "out": "out_file",
    "out_log": "out_file",
    "pid": "pid_file",
    # PM2's other names for the same things
    "exec": "script",
    "cmd": "script",
    "command": "script",
    "listen_timeout": "wait_timeout",
    "autostart": "enabled",
    "uid": "user",
    "gid": "group",
    "cron": "cron_restart",
}
LOG_GROUP = (
    "out_file",
    "error_file",
    "log_file",
    "pid_file",
    "max_log_size",
    "max_log_files",
    "merge_logs",
    "time",
    "log_date_format",
    "log_type",
    "compress_logs",
    "rotation_schedule",
)

# Flat spellings of the health check, folded into `health_check`.
FLAT_HEALTH = {
    "health_check_url": "url",
    "health_check_script": "script",
    "health_check_timeout": "timeout",
    "health_check_interval": "interval",
    "health_check_retries": "retries",
}
for _flat, _key in FLAT_HEALTH.items():
    FIELDS[_flat] = Field(
        lambda f, v: v,
        HEALTH_SCHEMA["properties"][_key],  # type: ignore[index]
        f"flat form of health_check.{_key}",
    )


def inert_warnings(raw: Mapping[str, Any]) -> list[str]:
    """One line per field that is accepted but does nothing here, when its value asks for
    something (``watch: false`` says nothing)."""
    seen: list[str] = []
    group = raw.get("log")
    keys = {str(k) for k in raw} | (
        {str(k) for k in group} if isinstance(group, Mapping) else set()
    )
    for key in sorted(keys):
        entry = INERT_FIELDS.get(key)
        value = raw.get(key, group.get(key) if isinstance(group, Mapping) else None)
        if value is False and key in INERT_FALSE_WARNINGS:
            message = INERT_FALSE_WARNINGS[key]
        elif value is True and key in INERT_QUIET_TRUE:
            continue
        elif entry and value not in (False, None, [], "", {}):
            message = entry[2]
        else:
            continue
        if message and message not in seen:
            seen.append(message)
    return seen


def suggest(field: str, known: list[str]) -> str:
    close = difflib.get_close_matches(field, known, n=1, cutoff=0.6)
    if not close:
        close = [k for k in known if k.startswith(field) or field.startswith(k)][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


KNOWN = [*FIELDS, *INERT_FIELDS, *FIELD_ALIASES, "log"]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


# PM2 reads each field under its camelCase name too (lib/tools/Config.js): exactly those.
CAMEL_CASE = {
    _camel(name): FIELD_ALIASES.get(name, name)
    for name in [*FIELDS, *INERT_FIELDS, *FIELD_ALIASES]
    if "_" in name and _camel(name) not in KNOWN
}


def normalize(raw: Mapping[str, Any], problem: Callable[[str, str], None]) -> dict[str, Any]:
    """The fields of an app as the field table names them: aliases folded in, PMDaemon's
    nested ``log`` group and the flat ``health_check_*`` fields merged, and the fields that
    do nothing here checked and dropped. ``problem(field, message)`` hears of each bad
    one (unknown fields, a field given twice under two names)."""
    values: dict[str, Any] = {}

    def put(key: str, value: Any, written: str) -> None:
        if key in values and values[key] != value:
            problem(written, f"{written!r} is also given as {key!r}: give one of them")
            return
        values[key] = value  # the same value under two names (PM2 files do it) is one

    for key, value in raw.items():
        if not isinstance(key, str):
            problem(str(key)[:40], f"unknown field {str(key)[:40]!r}: field names are strings")
            continue
        if key == "log" and value is None:
            continue  # PM2's log (log_file) left empty
        if key == "log" and not isinstance(value, Mapping):
            put("log_file", value, "log")  # PM2's alias of log_file
            continue
        if key == "log":
            if not isinstance(value, Mapping):
                problem("log", f"invalid log: expected an object of {', '.join(LOG_GROUP)}")
                continue
            for inner, inner_value in value.items():
                if inner not in LOG_GROUP:
                    label = f"log.{shown_key(str(inner), 40)}"
                    problem(
                        label,
                        f"unknown field {label}{suggest(str(inner), list(LOG_GROUP))}: "
                        f"accepted {', '.join(LOG_GROUP)}",
                    )
                    continue
                put(str(inner), inner_value, f"log.{inner}")
            continue
        target = FIELD_ALIASES.get(key, key)
        target = CAMEL_CASE.get(target, target)  # PM2's maxRestarts, logDateFormat, ...
        if target not in FIELDS and target not in INERT_FIELDS:
            problem(key[:40], f"unknown field {key[:40]!r}{suggest(key, KNOWN)}")
            continue
        put(target, value, key)
    for key in [k for k in values if k in INERT_FIELDS]:
        try:
            INERT_FIELDS[key][0](key, values.pop(key))
        except InvalidInput as exc:
            problem(key, exc.message)
    flat = {FLAT_HEALTH[k]: values.pop(k) for k in list(values) if k in FLAT_HEALTH}
    if flat:
        nested = values.get("health_check")
        merged = dict(nested) if isinstance(nested, Mapping) else {}
        for key, value in flat.items():
            if key in merged:
                problem(f"health_check_{key}", f"health_check.{key} is given twice")
            merged[key] = value
        values["health_check"] = merged
    return values


def build_spec(raw: Mapping[str, Any], *, default_cwd: str) -> ProcessSpec:
    """Validate ``raw`` field by field and return the spec; raise InvalidInput on the first
    bad field (ecosystem files collect every error themselves)."""
    if not isinstance(raw, Mapping):
        raise InvalidInput("invalid process configuration: expected an object of fields")

    def refuse(field: str, message: str) -> None:
        raise InvalidInput(message, {"field": field})

    values: dict[str, Any] = {}
    for key, value in normalize(raw, refuse).items():
        parsed = FIELDS[key].parse(key, value)
        if parsed is not None or key == "max_restarts":
            values[key] = parsed
    if "script" not in values:
        raise InvalidInput(
            "missing field 'script': the program or file to run", {"field": "script"}
        )
    if "name" not in values:
        values["name"] = validate_name(default_name(values["script"]))
    cwd = values.get("cwd", default_cwd)
    values["cwd"] = os.path.normpath(os.path.join(default_cwd, os.path.expanduser(cwd)))
    if values.get("instances") == 0:  # PMDaemon's "0: disable the process"
        values["instances"] = 1
        values["enabled"] = False
    instances = values.get("instances", 1)
    if instances > 1 and len(values["name"]) + 1 + len(str(instances - 1)) > 64:
        raise InvalidInput(
            f"invalid name {shown(values['name'])}: with {instances} instances the names "
            f"{values['name']}-0 ... would be longer than 64 characters",
            {"field": "name"},
        )
    check_instance_ports(instances, values.get("port"))
    check_increment(values)
    if values.get("increment_var") == "PORT" and values.get("port") is None:
        first = int(values["env"]["PORT"])  # PM2's way to give instances ports: one each
        values["port"] = str(first) if instances == 1 else f"{first}-{first + instances - 1}"
    return ProcessSpec(**values)


def check_watch_paths(spec: ProcessSpec) -> None:
    """Every path to watch exists (checked where the app starts, not by `validate` on a
    machine that lacks the app's directory)."""
    for path in spec.watch:
        full = os.path.normpath(os.path.join(spec.cwd, path))
        if not os.path.exists(full):
            raise InvalidInput(
                f"invalid watch path {shown(path)}: {full} does not exist (watch paths are "
                "relative to the app's cwd)",
                {"field": "watch"},
            )


def check_increment(values: Mapping[str, Any]) -> None:
    """``increment_var`` names a variable of ``env`` that holds an integer (PM2 adds the
    instance index to it); PORT becomes the instances' ports when no port is given."""
    var = values.get("increment_var")
    if var is None:
        return
    env = values.get("env") or {}
    if var == "PORT" and values.get("port") is not None:
        return
    text = env.get(var)
    if text is None or not text.strip().isascii() or not text.strip().isdigit():
        raise InvalidInput(
            f"invalid increment_var {shown(var)}: env must give {var} an integer to start from "
            f"(instance i gets it plus i)",
            {"field": "increment_var"},
        )
    if var == "PORT":
        first = int(text)
        check_instance_ports(
            values.get("instances", 1),
            f"{first}-{first + values.get('instances', 1) - 1}",
            "env.PORT",
        )


def default_name(script: str) -> str:
    """The stem of the script's first word: ``python3 -m x`` → ``python3``, ``app.py`` → ``app``."""
    first = script.strip().split()[0] if script.strip() else script
    stem = os.path.basename(first.rstrip("/"))
    base, ext = os.path.splitext(stem)
    return base if base and ext in SCRIPT_EXTENSIONS else stem


SCRIPT_EXTENSIONS = frozenset({".py", ".js", ".mjs", ".cjs", ".ts", ".sh", ".rb", ".pl", ".php"})
