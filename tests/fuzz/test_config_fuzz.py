"""Hypothesis over whole ecosystem documents (issue 9, fuzzing): arbitrary JSON-like trees,
valid apps with one field changed to anything, and raw text, written as JSON, YAML and TOML
files and read by `config.load` and `config.app_names`.

Properties: loading returns apps whose specs are well-typed and rebuild to themselves, or
raises EcosystemError whose every problem is one short printable line; never another
exception. A valid app reads the same from JSON, YAML and TOML. Example counts are fixed and
derandomized, so the whole module runs in seconds and CI sees the same documents each time.
"""

from __future__ import annotations

import json
import math
import signal
import textwrap
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pmdaemon import config
from pmdaemon.model import ProcessSpec
from pmdaemon.specs import FIELD_ALIASES, FIELDS, INERT_FIELDS, build_spec

FUZZ = settings(
    max_examples=200,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FORMATS = ("json", "yaml", "toml")
MAX_LINE = 600  # a problem line, not counting the file name that starts it

# --- documents -------------------------------------------------------------------------

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.text(max_size=20),
    st.text(min_size=100, max_size=1000),
)
TREES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
KEYS = sorted(
    {*FIELDS, *FIELD_ALIASES, *INERT_FIELDS, "log", "maxRestarts", "logDateFormat"}
    | {"env_production", "env_", "env_file", "instance", "max_memory", "health_check.url"}
)


def text(min_size: int = 1, max_size: int = 24) -> st.SearchStrategy[str]:
    return st.text(
        st.characters(codec="utf-8", exclude_characters="\x00"),
        min_size=min_size,
        max_size=max_size,
    )


def nonblank() -> st.SearchStrategy[str]:
    return text().filter(lambda s: bool(s.strip()))


NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.]{0,20}", fullmatch=True).filter(
    lambda s: not s.isdigit() and s != "all"
)
DURATIONS = st.one_of(
    st.integers(min_value=0, max_value=10**7),
    st.builds(
        lambda n, unit: f"{n}{unit}",
        st.integers(min_value=0, max_value=5000),
        st.sampled_from(["", "ms", "s", "m", "h"]),
    ),
    st.sampled_from(["1.5s", ".5s", " 250ms ", "0.25m"]),
)
POSITIVE_DURATIONS = st.one_of(
    st.integers(min_value=1, max_value=10**7), st.sampled_from(["1s", "500ms", "2m", "0.5s"])
)
SIZES = st.one_of(
    st.integers(min_value=1024, max_value=2**40),
    st.builds(
        lambda n, unit: f"{n}{unit}",
        st.integers(min_value=1, max_value=4096),
        st.sampled_from(["K", "M", "G", "kb", "MiB", "GB"]),
    ),
)
BOOLS = st.one_of(st.booleans(), st.sampled_from(["true", "false", "True", "FALSE"]))
SIGNALS = st.one_of(
    st.sampled_from(["SIGTERM", "SIGINT", "term", "hup", "SIGUSR1", "sigquit"]),
    st.sampled_from([int(signal.SIGTERM), int(signal.SIGINT), int(signal.SIGHUP)]),
)
# What an environment value or an argument may be written as: text, or a scalar the
# loader turns into text.
SCALARS = st.one_of(
    text(0),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False),
)
ENV = st.dictionaries(text(max_size=12).filter(lambda k: "=" not in k), SCALARS, max_size=4)
HEALTH = st.one_of(
    st.fixed_dictionaries(
        {"url": st.sampled_from(["http://127.0.0.1:3000/health", "https://x/h"])},
        optional={"type": st.just("http")},
    ),
    st.fixed_dictionaries(
        {"type": st.just("script"), "script": nonblank()},
        optional={
            "timeout": POSITIVE_DURATIONS,
            "interval": POSITIVE_DURATIONS,
            "retries": st.integers(min_value=1, max_value=1000),
            "enabled": BOOLS,
        },
    ),
)


@st.composite
def ports(draw: st.DrawFn, instances: int) -> int | str:
    first = draw(st.integers(min_value=1, max_value=60000))
    if instances == 1 and draw(st.booleans()):
        return first if draw(st.booleans()) else str(first)
    last = first + instances - 1 + draw(st.integers(min_value=0, max_value=10))
    return f"{draw(st.sampled_from(['', 'auto:']))}{first}-{last}"


@st.composite
def valid_apps(draw: st.DrawFn) -> dict[str, Any]:
    """One app that must load, every optional field present or not, in several spellings."""
    instances = draw(st.integers(min_value=1, max_value=3))
    optional: dict[str, st.SearchStrategy[Any]] = {
        "args": st.lists(SCALARS, max_size=4),
        "interpreter": st.one_of(st.none(), nonblank()),
        "cwd": nonblank(),
        "env": ENV,
        "env_production": ENV,
        "env_file": st.one_of(st.none(), nonblank()),
        "namespace": st.one_of(NAMES, st.just("default")),
        "instances": st.sampled_from([instances, str(instances)]),
        "port": st.one_of(st.none(), ports(instances)),
        "autorestart": BOOLS,
        "max_restarts": st.one_of(
            st.integers(min_value=0, max_value=10**6), st.sampled_from(["5", " 16 "])
        ),
        "min_uptime": DURATIONS,
        "restart_delay": DURATIONS,
        "exp_backoff_restart_delay": st.one_of(st.none(), DURATIONS),
        "stop_exit_codes": st.one_of(
            st.lists(st.integers(min_value=0, max_value=255), max_size=4),
            st.integers(min_value=0, max_value=255),
            st.sampled_from(["0", "0, 3", "1,2,"]),
        ),
        "kill_signal": SIGNALS,
        "kill_timeout": DURATIONS,
        "max_memory_restart": st.one_of(st.none(), SIZES),
        "health_check": st.one_of(st.none(), HEALTH),
        "wait_ready": BOOLS,
        "wait_timeout": DURATIONS,
        "out_file": st.one_of(st.none(), nonblank()),
        "error_file": st.one_of(st.none(), nonblank()),
        "time": BOOLS,
        "log_date_format": st.one_of(
            st.none(), st.sampled_from(["YYYY-MM-DD HH:mm:ss Z", "%Y-%m-%d %H:%M:%S", "x"])
        ),
        "max_log_size": SIZES,
        "max_log_files": st.integers(min_value=1, max_value=1000),
    }
    app = draw(st.fixed_dictionaries({"name": NAMES, "script": nonblank()}, optional=optional))
    if app.get("log_date_format") == "x":
        app["log_date_format"] = "HH:mm"
    return app


def documents_of(apps: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[Any]:
    return st.lists(apps, min_size=1, max_size=3, unique_by=lambda a: str(a.get("name"))).map(
        lambda items: {"apps": items}
    )


@st.composite
def mutated_apps(draw: st.DrawFn) -> dict[str, Any]:
    """A valid app with one field set to anything, or removed."""
    app = draw(valid_apps())
    key = draw(st.sampled_from(KEYS))
    if key in app and draw(st.integers(0, 4)) == 0:
        del app[key]
    else:
        app[key] = draw(TREES)
    return app


DOCUMENTS = st.one_of(
    TREES,
    st.dictionaries(st.sampled_from(["apps", "deploy", "app"]), TREES, max_size=2),
    st.builds(lambda apps: {"apps": apps}, st.lists(TREES, max_size=3)),
    documents_of(mutated_apps()),
    documents_of(
        st.dictionaries(st.sampled_from(KEYS), TREES, max_size=5).map(
            lambda a: {"script": "a.py", **a}
        )
    ),
)

# --- writers ---------------------------------------------------------------------------


def toml_value(value: Any) -> str:
    """A TOML value for a JSON-like value (None has no TOML spelling: the caller drops it)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        items = (
            f"{toml_string(str(k))} = {toml_value(v)}" for k, v in value.items() if v is not None
        )
        return "{" + ", ".join(items) + "}"
    raise TypeError(type(value))


def toml_string(text: str) -> str:
    out = []
    for char in text:
        if char in '"\\' or ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def serialize(document: Any, kind: str) -> str:
    if kind == "json":
        return json.dumps(document)
    if kind == "yaml":
        # Escaped: with allow_unicode PyYAML writes a NEL raw, which YAML reads as a line break.
        return yaml.safe_dump(document)
    if not isinstance(document, dict):  # TOML has only tables at the top
        document = {"value": document}
    return (
        "\n".join(
            f"{toml_string(str(k))} = {toml_value(v)}" for k, v in document.items() if v is not None
        )
        + "\n"
    )


def without_none(value: Any) -> Any:
    """What a TOML file of ``value`` says: no None anywhere."""
    if isinstance(value, list):
        return [without_none(v) for v in value if v is not None]
    if isinstance(value, dict):
        return {k: without_none(v) for k, v in value.items() if v is not None}
    return value


# --- properties ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("eco")


def check_outcome(path: Path, **kw: Any) -> list[config.App] | None:
    """Load ``path``: well-typed specs, or EcosystemError with one readable line a problem."""
    try:
        apps = config.load(path, **kw)
    except config.EcosystemError as exc:
        lines = [str(p) for p in exc.problems]
        assert lines and str(exc) == "\n".join(lines)
        for line in lines:
            assert line.startswith(f"{path}: "), line
            rest = line.removeprefix(f"{path}: ")
            assert rest.isprintable() and len(rest) <= MAX_LINE, line
            assert "Traceback" not in line
        return None
    for app in apps:
        assert isinstance(app.spec, ProcessSpec)
        again = msgspec.convert(msgspec.to_builtins(app.spec), ProcessSpec)
        assert again == app.spec
        assert build_spec(app.raw, default_cwd=str(path.parent)) == app.spec
    return apps


def check_names(path: Path) -> None:
    try:
        names = config.app_names(path)
    except config.EcosystemError as exc:
        assert all(str(p).isprintable() for p in exc.problems)
        return
    assert names and all(isinstance(n, str) and n for n in names)


@FUZZ
@given(
    document=DOCUMENTS, kind=st.sampled_from(FORMATS), profile=st.sampled_from([None, "production"])
)
def test_any_document_loads_or_is_refused_line_by_line(
    workdir: Path, document: Any, kind: str, profile: str | None
) -> None:
    path = workdir / f"eco.{kind}"
    path.write_text(serialize(document, kind), encoding="utf-8")
    check_outcome(path, env_name=profile)
    check_names(path)


@FUZZ
@given(
    content=st.one_of(st.text(max_size=200).map(str.encode), st.binary(max_size=200)),
    kind=st.sampled_from(["json", "yaml", "yml", "toml"]),
)
def test_any_text_loads_or_is_refused_line_by_line(
    workdir: Path, content: bytes, kind: str
) -> None:
    path = workdir / f"raw.{kind}"
    path.write_bytes(content)
    check_outcome(path)
    check_names(path)


@FUZZ
@given(document=documents_of(valid_apps()))
def test_a_valid_app_reads_the_same_from_every_format(workdir: Path, document: Any) -> None:
    specs = {}
    for kind in FORMATS:
        path = workdir / f"valid.{kind}"
        path.write_text(serialize(document, kind), encoding="utf-8")
        apps = check_outcome(path)
        assert apps is not None, kind
        specs[kind] = [app.spec for app in apps]
    assert specs["json"] == specs["yaml"] == specs["toml"]
    expected = [
        build_spec(
            {k: v for k, v in app.items() if not config.PROFILE_KEY.fullmatch(k)},
            default_cwd=str(workdir),
        )
        for app in document["apps"]
    ]
    assert specs["json"] == expected


def outcome(path: Path) -> Any:
    """Specs, or the problems without the file name."""
    try:
        return [app.spec for app in config.load(path)]
    except config.EcosystemError as exc:
        return [str(p).removeprefix(f"{path}: ") for p in exc.problems]


@FUZZ
@given(first=valid_apps(), second=valid_apps())
def test_yaml_merge_keys_read_as_what_they_expand_to(
    workdir: Path, first: dict[str, Any], second: dict[str, Any]
) -> None:
    """`- <<: *first` (a YAML merge key) in an apps list reads as the expanded app."""
    second["name"] = first["name"] + "_2"

    def block(app: dict[str, Any]) -> str:
        return textwrap.indent(yaml.safe_dump(app), "  ")

    merged = workdir / "merged.yaml"
    merged.write_text(f"apps:\n- &first\n{block(first)}- <<: *first\n{block(second)}")
    expanded = workdir / "expanded.json"
    expanded.write_text(json.dumps({"apps": [first, {**first, **second}]}))
    assert outcome(merged) == outcome(expanded)


def test_the_toml_writer_writes_what_tomllib_reads() -> None:
    import tomllib

    document = {"apps": [{'a"b': "x\\y\n\x7f", "n": [1, 2.5, None, True], "t": {"k": None}}]}
    assert tomllib.loads(serialize(document, "toml")) == without_none(document)
