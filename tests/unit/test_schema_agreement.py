"""The committed JSON Schema and the loader agree on what an ecosystem file may say."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from pmdaemon import config

SCHEMA = json.loads((Path(__file__).parents[2] / "schema" / "ecosystem.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def app(**fields: Any) -> dict[str, Any]:
    return {"apps": [{"script": "a.py", **fields}]}


CASES = [
    # both accept
    ({"apps": [{"script": "a.py"}], "deploy": {"production": {}}}, True),
    (app(exec_interpreter="node"), True),
    (app(err_file="e.log", output="o.log"), True),
    (app(instances="2", port="3000-3001"), True),
    (app(max_restarts="5", autorestart="true"), True),
    (app(port=None, interpreter=None, max_memory_restart=None), True),
    (app(args=["--flag", True, 3, 1.5]), True),
    (app(instances=2.0, port="3000-3001"), True),
    (app(port=3000.0), True),
    (app(instances=2, port="${PMDAEMON_TEST_UNSET_PORTS:-3000-3001}"), True),
    (app(max_memory_restart=1e9), True),
    (app(stop_exit_codes="0, 3"), True),
    (app(env_production={"A": 1}), True),
    (app(health_check={"url": "http://127.0.0.1/h"}), True),
    # both refuse
    (app(env_={"A": "1"}), False),
    ({"apps": [{"script": "a.py", "env_pro d": {"A": "1"}}]}, False),
    (app(port="auto:5000"), False),
    (app(port="0"), False),
    (app(name="all"), False),
    (app(name="123"), False),
    (app(health_check={"type": "http"}), False),
    (app(health_check={"type": "script", "url": "http://x"}), False),
    (app(health_check={"type": "http", "url": "ftp://x"}), False),
    (app(min_uptime=1e12), False),
    (app(health_check={"url": "http://x", "retries": 5000}), False),
    (app(stop_exit_codes="x"), False),
    ({"apps": [{"script": "  "}]}, False),
    (app(max_memory="1G"), False),
    (app(instances=0), True),
    (app(instances=-1), True),
    (app(instances=-1025), False),
    ({"pm2": [{"script": "a.py"}], "extra": 1}, True),
    (app(log="all.log", out_file="o.log"), True),
    (app(log="all.log", log_file="b.log"), False),
    (app(cron_restart="*/5 * * * *"), True),
    (app(cron_restart="0"), True),
    (app(cron_restart="* * *"), False),
    (app(watch="src", ignore_watch=["node_modules", "*.log"]), True),
    (app(watch=5), False),
    (app(filter_env=["SECRET"], log_type="json", disable_logs=True), True),
    (app(log_type="xml"), True),  # PM2 takes any string; only json changes anything
    (app(log_type=5), False),
    (app(maxRestarts=3, logDateFormat="YYYY"), True),
    (app(USER="nobody"), False),  # only PM2's exact camelCase names
    (app(Watch=True), False),
    (app(vizion=False, pmx=True, treekill=False, autostart=False, uid="root"), True),
    (app(autorestart="maybe"), False),
]


@pytest.mark.parametrize(("document", "valid"), CASES)
def test_schema_and_loader_agree(tmp_path: Path, document: dict[str, Any], valid: bool) -> None:
    (tmp_path / "src").mkdir()  # a path to watch
    path = tmp_path / "eco.json"
    path.write_text(json.dumps(document))
    try:
        config.load(path)
        loaded = True
    except config.EcosystemError:
        loaded = False
    assert VALIDATOR.is_valid(document) == valid, "schema"
    assert loaded == valid, "loader"


# Single-field cases: for each field, values on both sides of every edge the parser has.
# The schema and the loader must give the same verdict on each (issue 16: they disagreed on
# 31 of 201 such cases, e.g. max_log_size 1, instances "5000", port "70000", SIGFOO).
DURATIONS = [
    0,
    1,
    1.5,
    -1,
    31622400000,
    31622400001,
    "0",
    "500ms",
    " 5s ",
    "1.5s",
    ".5s",
    "1m",
    "2h",
    "8784h",
    "8785h",
    "527040m",
    "527041m",
    "31622400s",
    "31622401s",
    "31622400000ms",
    "31622400001ms",
    "31622400001",
    "5 s",
    "5S",
    "1e3",
    "-1s",
    "soon",
    "",
    True,
    None,
    [1],
]
SIZES = [
    1,
    0,
    1023,
    1024,
    2**62,
    2**62 + 1,
    1.5,
    "1",
    "0",
    "512",
    "1023",
    "1024",
    "1K",
    "0.5K",
    "1k",
    "1KB",
    "1KiB",
    "1iB",
    "1B",
    "100M",
    "1.5G",
    "1g",
    "0.001M",
    "0.0001M",
    "4194304T",
    "4194305T",
    "1P",
    "lots",
    "",
    True,
    -5,
]
COUNTS = [
    0,
    1,
    2,
    1000,
    1001,
    1024,
    1025,
    "0",
    "5",
    "5000",
    " 7 ",
    "007",
    "1.5",
    2.0,
    2.5,
    -1,
    True,
    "x",
    None,
]
PORTS = [
    0,
    1,
    3000,
    65535,
    65536,
    3000.0,
    "3000",
    "03000",
    "70000",
    "0",
    "3000-3003",
    "3000-70000",
    "auto:5000-5100",
    "auto:5000",
    "auto:0-10",
    "3000 - 3001",
    " 3000 ",
    {"start": 3000, "max": 3010},
    {"start": 3000, "max": 3010, "increment": 2},
    {"start": 3000},
    True,
    None,
    "x",
]
SIGNAL_VALUES = ["SIGTERM", "term", "SigInt", "HUP", "SIGFOO", "", 15, 9, 0, 999, True, None]
BOOLS = [True, False, "true", "FALSE", "tRuE", "yes", 1, 0, None]
STRINGS = ["a", "", "  ", "a\x00b", "x" * 4096, "x" * 4097, 5, None, ["a"]]
FIELD_VALUES: dict[str, list[Any]] = {
    "name": ["web", "web-1", "_x", ".x", "-x", "all", "123", "a" * 64, "a" * 65, "a b", 5],
    "namespace": ["default", "prod", "all", "1", "a b"],
    "instances": [*COUNTS, "max", "MAX", 0, -1, -4, -1024, -1025, "-1"],
    "max_restarts": [*COUNTS, 1_000_000, 1_000_001, "unlimited", "Unlimited", "infinite", "none"],
    "max_log_files": COUNTS,
    "port": PORTS,
    "kill_signal": SIGNAL_VALUES,
    "stop_exit_codes": [
        0,
        255,
        256,
        "0,3",
        "0, 3",
        "0,,3",
        ",",
        "",
        "0 3",
        "300",
        [0, "3"],
        [256],
        ["x"],
        "x",
        -1,
    ],
    "min_uptime": DURATIONS,
    "kill_timeout": DURATIONS,
    "exp_backoff_restart_delay": DURATIONS,
    "max_memory_restart": SIZES,
    "max_log_size": SIZES,
    "autorestart": BOOLS,
    "time": BOOLS,
    "merge_logs": BOOLS,
    "enabled": BOOLS,
    "script": STRINGS,
    "cwd": STRINGS,
    "out_file": STRINGS,
    "log_file": [*STRINGS, True, False],
    "pid_file": STRINGS,
    "interpreter": STRINGS,
    "exec_mode": ["fork", "cluster", "cluster_mode", "FORK", "Fork", "spawn", 1],
    "user": ["www-data", "root", "1000", 1000, -1, "a b", "", "x" * 33],
    "increment_var": ["PORT", "1X", "A-B", ""],
    "args": [["a", 1, True, 1.5], [None], "a b", ["x" * 4097], [["a"]], 5],
    "env": [
        {"A": "1"},
        {"A": 1},
        {"A": None},
        {"A=B": "1"},
        {"": "1"},
        {"A": ["x"]},
        {"A": "a\x00"},
        "A=1",
    ],
    "labels": [{"app": "web"}, {"a/b": 1}, {"": "x"}, {"a": ["x"]}, {"a b": "x"}, []],
    "health_check": [
        {"url": "http://x/h"},
        {"url": "ftp://x/h"},
        {"type": "tcp", "url": "http://x"},
        {"check_type": "http", "url": "http://x"},
        {"check_type": "script", "url": "http://x"},
        {"type": "http", "check_type": "script", "url": "http://x"},
        {"url": "http://x", "timeout": 10},
        {"url": "http://x", "timeout": 0},
        {"url": "http://x", "timeout": "0s"},
        {"url": "http://x", "interval": "30"},
        {"url": "http://x", "interval": "2.5"},
        {"url": "http://x", "interval": 31622401},
        {"url": "http://x", "retries": "3"},
        {"url": "http://x", "retries": 0},
        {"url": "http://x", "enabled": "True"},
        {"script": "./c.sh", "extra": 1},
        {"type": None, "url": "http://x"},
        {},
    ],
    "health_check_url": ["http://x/h", "https://x", "ftp://x", ""],
    "health_check_timeout": [5, "5s", 0, "x"],
    "health_check_retries": [3, "3", 0, 1001],
    "watch": [True, False, "src", ["a", "b"], [], "false", 5, [5], {"a": 1}],
    "ignore_watch": ["node_modules", ["*.log", "\\.git"], [], 5, [""]],
    "watch_delay": [0, 1000, "1s", -1, "soon"],
    "cron_restart": [
        "0 3 * * *",
        False,
        True,
        "*/10 * * * * *",
        "@daily",
        "@DAILY",
        "0 9 * * mon-fri",
        "0 0 L * *",
        0,
        "0",
        "* * *",
        "* * * * * * *",
        "@sometimes",
        "",
        5,
        ["0 * * * *"],
    ],
    "filter_env": [True, False, "SECRET", ["A", "B"], 5, [5]],
    "log_type": ["json", "JSON", "raw", "xml", 5],
    "log": [{"out_file": "o.log", "compress_logs": True}, {"nope": 1}, "x", True, 5, None, False],
    "depends_on": [["db"], {"db": {"condition": "service_healthy"}}, 5],
}
SINGLE_FIELD = [(f, v) for f, values in FIELD_VALUES.items() for v in values]
# What JSON Schema cannot say: a reversed port range (its two ends compared), and the name an
# app gets from its script when it has none (a script "x" * 100 makes a name too long).
KNOWN_GAPS = {("port", "3001-3000"), ("script", "x" * 100), ("cron_restart", "61 * * * *")}


@pytest.mark.parametrize(("field", "value"), SINGLE_FIELD, ids=lambda x: repr(x)[:40])
def test_schema_and_loader_agree_on_every_single_field_case(
    tmp_path: Path, field: str, value: Any
) -> None:
    # A script's file name is the default name; the schema cannot check it (KNOWN_GAPS).
    document = (
        app(**{field: value}) if field != "script" else {"apps": [{"script": value, "name": "n"}]}
    )
    if field in ("health_check_timeout", "health_check_retries"):
        document["apps"][0]["health_check_url"] = "http://127.0.0.1/h"
    if field == "watch":  # the paths to watch exist
        for name in ("src", "a", "b"):
            (tmp_path / name).mkdir(exist_ok=True)
    if field == "increment_var":  # it needs a number to start from
        document["apps"][0]["env"] = {"PORT": "3000", "X": "1"}
    path = tmp_path / "eco.json"
    path.write_text(json.dumps(document))
    try:
        config.load(path, environ={})
        loaded = True
    except config.EcosystemError:
        loaded = False
    assert VALIDATOR.is_valid(document) == loaded, f"schema says {not loaded}, loader {loaded}"


def test_the_single_field_cases_are_many_and_go_both_ways(tmp_path: Path) -> None:
    assert len(SINGLE_FIELD) > 300
    assert ("port", "3001-3000") in KNOWN_GAPS
    for field, value in KNOWN_GAPS:  # what the schema lets through and the loader does not
        document = {"apps": [{"script": "a.py", field: value}]}
        assert VALIDATOR.is_valid(document)
