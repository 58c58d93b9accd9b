"""Ecosystem files (JSON, YAML, TOML, and PM2's JavaScript files through node) → validated
app configurations. The only module that knows file formats. Validation is complete: every
problem of every app is collected, so one run of `validate` shows them all."""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pmdaemon import interpolate, jsonc, nodeconfig
from pmdaemon.errors import ConfigError, InvalidInput
from pmdaemon.model import ProcessSpec
from pmdaemon.specs import (
    FIELDS,
    build_spec,
    check_increment,
    check_instance_ports,
    check_watch_paths,
    default_name,
    inert_warnings,
    normalize,
)
from pmdaemon.units import shown_key

MAX_FILE = 10 * 1024 * 1024
FORMATS = {
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".toml": "toml",
    ".js": "js",
    ".cjs": "js",
    ".mjs": "js",
}
ECOSYSTEM_SUFFIXES = tuple(FORMATS)
# Where a file name alone says "ecosystem file" (start, stop, restart, reload, delete): as
# PM2, a .js file is a script unless it is named *.config.js.
NAMED_SUFFIXES = (".json", ".yaml", ".yml", ".toml", ".config.js", ".config.cjs", ".config.mjs")
# What `pmdaemon start` with no script looks for in the current directory (PM2's default
# first).
DEFAULT_FILES = (
    "ecosystem.config.js",
    "ecosystem.config.cjs",
    "ecosystem.config.mjs",
    "ecosystem.json",
    "ecosystem.yaml",
    "ecosystem.yml",
    "ecosystem.toml",
)

PROFILE_KEY = re.compile(r"^env_(?!file$)[A-Za-z0-9_.-]+$")
TOP_LEVEL = ("apps", "deploy", "$schema")
# PM2 reads these top-level keys too: `pm2` instead of `apps`, `static` for its file server.
PM2_TOP_LEVEL = ("pm2", "static")


@dataclass(frozen=True)
class Problem:
    file: str
    index: int | None
    name: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = [self.file]
        if self.index is not None:
            name = f" ({shown_key(self.name)})" if self.name else ""
            where.append(f"apps[{self.index}]{name}")
        # The field leads unless the message already names it.
        field = shown_key(self.field) if self.field else None
        if field and not re.search(rf"(?<![\w.]){re.escape(field)}(?![\w])", self.message):
            where.append(field)
        return ": ".join([*where, self.message])


def file_error(file: str, message: str) -> EcosystemError:
    """A problem with the file as a whole (not one app)."""
    return EcosystemError([Problem(file, None, None, None, message)])


class EcosystemError(ConfigError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(
            "\n".join(str(p) for p in problems), {"problems": [str(p) for p in problems]}
        )
        self.problems = problems


@dataclass
class App:
    """One app of a file: the raw fields to send to the daemon, and the checked spec."""

    index: int
    raw: dict[str, Any]
    spec: ProcessSpec
    warnings: list[str] = field(default_factory=list)


def is_ecosystem_path(text: str) -> bool:
    return has_ecosystem_name(text) and os.path.isfile(text)


def has_ecosystem_name(text: str) -> bool:
    """A file name that stands for an ecosystem file where a script could be given."""
    return text.lower().endswith(NAMED_SUFFIXES)


def default_file(directory: str = ".") -> str | None:
    """The ecosystem file `start` uses when given none, as PM2 does."""
    for name in DEFAULT_FILES:
        if os.path.isfile(os.path.join(directory, name)):
            return os.path.join(directory, name) if directory != "." else name
    return None


def read_document(path: Path) -> Any:
    shown = str(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise file_error(
            shown,
            f"unsupported file type {suffix or '(none)'!r}: expected "
            ".json, .yaml, .yml, .toml, or PM2's .js, .cjs, .mjs",
        )
    if FORMATS[suffix] == "js":
        return _evaluated(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE:
            raise file_error(
                shown,
                f"file is {size // (1024 * 1024)} MiB: at most "
                f"{MAX_FILE // (1024 * 1024)} MiB is accepted",
            )
        data = path.read_bytes()
    except OSError as exc:
        raise file_error(shown, f"cannot read: {exc.strerror}") from None
    if b"\x00" in data:
        raise file_error(shown, "binary content: expected a text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise file_error(shown, "not UTF-8 text: expected a text file") from None
    kind = FORMATS[suffix]

    def refuse(reason: str) -> EcosystemError:
        return file_error(shown, f"not valid {kind.upper()}: {reason}")

    try:
        if kind == "json":
            return _json(path, text)
        if kind == "toml":
            return tomllib.loads(text)
        import yaml

        return yaml.load(text, Loader=_yaml_loader())
    except RecursionError:
        raise refuse("nested too deeply") from None
    except DuplicateKey as exc:
        raise refuse(f"the key {exc.key!r} appears twice in one object") from None
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        reason = str(exc)
        if "digits" in reason and "int" in reason:
            reason = "a number has too many digits"
        raise refuse(reason[:200]) from None
    except Exception as exc:  # yaml.YAMLError and its kin
        if type(exc).__module__.startswith("yaml"):
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise refuse(first[:200]) from None
        raise


def _json(path: Path, text: str) -> Any:
    """JSON with comments and trailing commas; failing that, and with node at hand, the text
    as PM2 reads a .json file: one JavaScript expression (single quotes, bare keys)."""
    try:
        return json.loads(jsonc.strip(text), object_pairs_hook=_no_duplicate_keys)
    except DuplicateKey:
        raise
    except json.JSONDecodeError as strict:  # syntax only: a value JSON cannot hold stays refused
        if nodeconfig.node_path() is None:
            raise
        try:
            return nodeconfig.evaluate(path, expression=True)
        except nodeconfig.NodeConfigError:
            raise strict from None  # the JSON parser's message points at the problem


def _evaluated(path: Path) -> Any:
    if not path.is_file():
        raise file_error(str(path), "cannot read: No such file or directory")
    try:
        return nodeconfig.evaluate(path)
    except nodeconfig.NodeConfigError as exc:
        raise file_error(str(path), str(exc)) from None


class DuplicateKey(ValueError):
    def __init__(self, key: object) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key = str(key)[:40]


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKey(key)
        result[key] = value
    return result


YAML_MERGE = "tag:yaml.org,2002:merge"


def _yaml_loader() -> Any:
    """PyYAML's safe loader (the C one where built) refusing duplicate keys."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc,valid-type]
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen = set()
            for key_node, _ in node.value:
                # A merge key (`<<: *defaults`) is not a key: the base class expands it, and
                # keys written beside it override the merged ones.
                if key_node.tag == YAML_MERGE:
                    continue
                key = self.construct_object(key_node, deep=deep)
                if isinstance(key, str | int | float | bool) and key in seen:
                    raise DuplicateKey(key)
                seen.add(key) if isinstance(key, str | int | float | bool) else None
            return super().construct_mapping(node, deep=deep)

    return Loader


def load(
    path: Path,
    *,
    env_name: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    only: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[App]:
    """Every app of the file, checked; EcosystemError lists every problem found.
    ``overrides`` (CLI flags) replace file values; ``only`` keeps one app by name;
    ``${VAR}`` references take their values from ``environ`` (the process's own)."""
    shown = str(path)
    document = read_document(path)
    apps, problems, file_warnings = app_list(shown, document)
    if env_name is not None and not any(
        isinstance(a, Mapping) and f"env_{env_name}" in a for a in apps
    ):
        problems.append(
            Problem(
                shown,
                None,
                None,
                None,
                f"no app has an env_{env_name} block (profile {env_name!r} was asked for)",
            )
        )
    base_dir = str(path.absolute().parent)
    environ = os.environ if environ is None else environ
    result: list[App] = []
    seen: dict[str, tuple[int, str]] = {}  # name → the app (index, name) that takes it
    for index, written in enumerate(apps):
        unset: list[str] = []
        item = interpolate.expand(written, environ, "", unset)
        # With --name, flags apply to the app asked for, not to its neighbours.
        applies = only is None or _app_name(item) == only
        item = _as_pm2_reads(item, env_name, pm2_file=FORMATS.get(path.suffix.lower()) == "js")
        app, app_problems = _check_app(
            shown,
            index,
            item,
            base_dir,
            env_name,
            (overrides or {}) if applies else {},
            pm2_file=FORMATS.get(path.suffix.lower()) == "js",
        )
        problems += app_problems
        if app is not None:
            app.warnings += [
                f"apps[{index}] ({app.spec.name}): ${{{name}}} is not set in this environment "
                "and has no default (${NAME:-default}): left as written"
                for name in unset
            ]
        name = app.spec.name if app is not None else _app_name(item)
        if name is not None:
            count = app.spec.instances if app is not None else 1
            # A cluster takes its name and name-0 ... name-(N-1).
            taken = [name] + ([f"{name}-{i}" for i in range(count)] if count > 1 else [])
            clash = next((n for n in taken if n in seen), None)
            if clash is not None:
                other, owner = seen[clash]
                if clash == name == owner:
                    message = f"duplicate name: apps[{other}] is also {clash!r}"
                elif owner != clash:
                    message = (
                        f"the name {clash!r} is also the name of an instance of apps[{other}] "
                        f"({owner!r}, whose instances are {owner}-0 ...): rename one"
                    )
                else:
                    message = f"the name {clash!r} is also used by apps[{other}]"
                problems.append(Problem(shown, index, name, "name", message))
            for n in taken:
                seen.setdefault(n, (index, name))
        if app is not None:
            result.append(app)
    if problems:
        raise EcosystemError(problems)
    for app in result:
        app.warnings[:0] = file_warnings
    if only is not None:
        result = [a for a in result if a.spec.name == only]
        if not result:
            raise EcosystemError(
                [
                    Problem(
                        shown,
                        None,
                        None,
                        None,
                        f"no app named {only[:64]!r}: the file has " + ", ".join(sorted(seen)),
                    )
                ]
            )
    return result


def app_list(shown: str, document: Any) -> tuple[list[Any], list[Problem], list[str]]:
    """The app objects of a document, in the shapes PM2 and PMDaemon load: ``{"apps":
    [...]}`` (``apps`` may be one object; PM2 also reads ``pm2``), a top-level list of apps,
    or one bare app object. Raises EcosystemError when there are none; also returns the
    problems and the warnings about the file's other top-level keys (PM2 ignores keys it
    does not know, and so do we, saying so)."""
    problems: list[Problem] = []
    warnings: list[str] = []
    key = next(
        (k for k in ("apps", "pm2") if isinstance(document, Mapping) and k in document), None
    )
    if isinstance(document, list):
        apps: Any = document
    elif isinstance(document, Mapping) and key is None and "script" in document:
        return [document], [], []
    elif isinstance(document, Mapping) and key is not None:
        apps = document[key]
        if isinstance(apps, Mapping):
            apps = [apps]
        read = (key, "deploy", "$schema")
        for other in document:
            if other == "static":
                warnings.append(
                    "static: PM2's static file server is not part of pmdaemon (serve the "
                    "files with an app): ignored"
                )
            elif other not in read:
                warnings.append(
                    f"unknown top-level key {shown_key(other, 40)!r}: only "
                    f"{', '.join(repr(t) for t in read)} are read; ignored"
                )
        if "$schema" in document and not isinstance(document["$schema"], str):
            problems.append(Problem(shown, None, None, "$schema", "expected a string (a URL)"))
    else:
        raise EcosystemError(
            [
                Problem(
                    shown,
                    None,
                    None,
                    "apps",
                    "expected a top-level 'apps' list of app objects (or a list of apps, or "
                    "one app object with a script)",
                )
            ]
        )
    if not isinstance(apps, list):
        problems.append(
            Problem(
                shown,
                None,
                None,
                "apps",
                f"expected a list of app objects, got {type(apps).__name__}",
            )
        )
        raise EcosystemError(problems)
    if not apps:
        problems.append(Problem(shown, None, None, "apps", "the list is empty: nothing to run"))
        raise EcosystemError(problems)
    return apps, problems, warnings


def app_names(path: Path) -> list[str]:
    """The app names of a file, read leniently (for stop, restart, reload, delete): no
    profile, no validation beyond what finding the names needs."""
    try:
        apps, _, _ = app_list(str(path), read_document(path))
    except EcosystemError:
        apps = []
    names = [_app_name(item) for item in apps]
    found = [n for n in names if n]
    if not found:
        raise EcosystemError(
            [Problem(str(path), None, None, "apps", "no app names found in the file")]
        )
    return found


def _as_pm2_reads(item: Any, env_name: str | None, *, pm2_file: bool) -> Any:
    """What PM2 makes of an app before checking it: ``append_env_to_name`` adds the
    profile's name to the app's; ``instances: 0`` is one instance per CPU in a PM2 app (a
    JavaScript file, or one that says ``exec_mode``) where PMDaemon's files mean "created,
    not started"."""
    if not isinstance(item, Mapping):
        return item
    item = dict(item)
    if item.get("append_env_to_name") is True and env_name is not None:
        name = _app_name(item)
        if name is not None:
            item["name"] = f"{name}-{env_name}"
    if item.get("instances") in (0, "0") and (pm2_file or "exec_mode" in item):
        item["instances"] = "max"
    return item


def _app_name(item: Any) -> str | None:
    if not isinstance(item, Mapping):
        return None
    if isinstance(item.get("name"), str):
        return str(item["name"])
    if isinstance(item.get("script"), str) and item["script"].strip():
        return default_name(item["script"])
    return None


def _check_app(
    file: str,
    index: int,
    item: Any,
    base_dir: str,
    env_name: str | None,
    overrides: Mapping[str, Any],
    pm2_file: bool = False,
) -> tuple[App | None, list[Problem]]:
    if not isinstance(item, Mapping):
        return None, [
            Problem(file, index, None, None, f"expected an app object, got {type(item).__name__}")
        ]
    name = _app_name(item)
    problems: list[Problem] = []
    notes: list[str] = []
    who = f"apps[{index}] ({shown_key(name)})" if name else f"apps[{index}]"

    def problem(field: str | None, message: str) -> None:
        if pm2_file and message.startswith("unknown field"):
            # PM2 ignores fields it does not know; in its own format, so do we, saying so
            notes.append(f"{who}: {message}: ignored, as PM2 ignores it")
            return
        problems.append(Problem(file, index, name, field, message))

    written: dict[str, Any] = {}
    profiles: dict[str, Any] = {}
    for key, value in item.items():
        key = str(key)
        if PROFILE_KEY.fullmatch(key):
            profiles[key[4:]] = value
        else:
            written[key] = value
    raw = normalize(written, problem)
    for profile_name, block in profiles.items():
        if not isinstance(block, Mapping):
            problem(f"env_{profile_name}", "expected an object of environment variables")
    profile = profiles.get(env_name) if env_name is not None else None
    env_value = raw.get("env", {})
    if isinstance(profile, Mapping) and isinstance(env_value, Mapping):
        raw["env"] = {**env_value, **profile}
    for key, value in overrides.items():
        if key != "env":
            raw[key] = value
        elif isinstance(raw.get("env", {}), Mapping):
            raw["env"] = {**raw.get("env", {}), **value}  # -e values beat the file's
    if "script" not in raw:
        problem("script", "missing: the program or file to run")
    parsed: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            parsed[key] = FIELDS[key].parse(key, value)
        except InvalidInput as exc:
            problem(key, exc.message)
    # Checks across fields, reported with the rest when their fields are themselves valid.
    failed = {p.field for p in problems}
    _shared_port(parsed, raw, notes, who)
    if "port" in parsed and "instances" not in failed:
        try:
            check_instance_ports(parsed.get("instances") or 1, parsed["port"])
        except InvalidInput as exc:
            problem("port", exc.message)
    if parsed.get("increment_var") and not failed & {"env", "instances", "port"}:
        try:
            check_increment({**parsed, "instances": parsed.get("instances") or 1})
        except InvalidInput as exc:
            problem("increment_var", exc.message)
    if problems:
        return None, problems
    try:
        spec = build_spec(raw, default_cwd=base_dir)
    except InvalidInput as exc:
        return None, [Problem(file, index, name, exc.details.get("field"), exc.message)]
    try:
        check_watch_paths(spec)
    except InvalidInput as exc:  # the daemon refuses it at start; a file may be checked
        notes.append(f"{who}: {exc.message}: the app will not start until it exists")
    # Paths in the file are relative to the file, wherever the CLI runs.
    raw["cwd"] = spec.cwd
    return App(index, raw, spec, notes + inert_warnings(written)), []


def _shared_port(parsed: dict[str, Any], raw: dict[str, Any], notes: list[str], who: str) -> None:
    """A PM2 cluster's instances share one port through Node's cluster module; here each
    instance is a process of its own, so one port becomes a range, with a warning."""
    count, port = parsed.get("instances") or 1, parsed.get("port")
    if parsed.get("exec_mode") != "cluster" or count < 2 or not isinstance(port, int):
        return
    raw["port"] = parsed["port"] = f"{port}-{port + count - 1}"
    notes.append(
        f"{who}: the {count} instances of a cluster cannot share port {port} here (PM2 shares "
        f"it through Node's cluster module): they get ports {raw['port']}"
    )
