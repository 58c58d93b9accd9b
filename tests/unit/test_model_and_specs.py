from __future__ import annotations

import pytest

from pmdaemon.errors import InvalidInput
from pmdaemon.model import ProcessState, can_transition, validate_name
from pmdaemon.specs import build_spec, default_name


def test_transitions() -> None:
    S = ProcessState
    assert can_transition(S.STOPPED, S.STARTING)
    assert can_transition(S.ONLINE, S.RESTARTING)
    assert can_transition(S.RESTARTING, S.ERRORED)
    assert not can_transition(S.STOPPED, S.ONLINE)
    assert not can_transition(S.STOPPING, S.ONLINE)
    assert [s.value for s in S] == [
        "starting",
        "online",
        "stopping",
        "stopped",
        "restarting",
        "errored",
    ]


@pytest.mark.parametrize("name", ["web", "api_1", "a.b-c", "_x", "9lives", "a" * 64])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    "name", ["../x", "a" * 65, "all", "123", "", "-x", ".x", "a ", " a", "a\tb", "é", 5]
)
def test_invalid_names(name: object) -> None:
    with pytest.raises(InvalidInput):
        validate_name(name)


def test_build_spec_defaults_and_parsing() -> None:
    spec = build_spec(
        {
            "script": "app.py",
            "min_uptime": "500ms",
            "kill_timeout": 3000,
            "env": {"N": 5, "B": True},
            "stop_exit_codes": "0,2",
            "kill_signal": "int",
            "cwd": "sub",
        },
        default_cwd="/srv",
    )
    assert spec.name == "app" and spec.cwd == "/srv/sub"
    assert spec.min_uptime == 0.5 and spec.kill_timeout == 3.0
    assert spec.env == {"N": "5", "B": "true"}
    assert spec.stop_exit_codes == (0, 2) and spec.kill_signal == "SIGINT"
    assert spec.max_restarts == 16 and spec.autorestart


def test_unknown_fields_get_a_suggestion() -> None:
    with pytest.raises(InvalidInput) as err:
        build_spec({"script": "a", "max_restart": 3}, default_cwd="/")
    assert "did you mean 'max_restarts'" in err.value.message
    with pytest.raises(InvalidInput, match="missing field 'script'"):
        build_spec({"name": "a"}, default_cwd="/")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("script", ""),
        ("script", "x" * 5000),
        ("args", 5),
        ("env", []),
        ("env", {"A=B": "1"}),
        ("autorestart", "maybe"),
        ("max_restarts", 1.5),
        ("stop_exit_codes", [256]),
        ("kill_signal", "SIGFOO"),
        ("cwd", "a\x00b"),
    ],
)
def test_bad_field_values(field: str, value: object) -> None:
    with pytest.raises(InvalidInput) as err:
        build_spec({"script": "a", field: value}, default_cwd="/")
    assert field in err.value.message


def test_default_names() -> None:
    assert default_name("python3 -m http.server") == "python3"
    assert default_name("/srv/app/server.js") == "server"
    assert default_name("./run-me") == "run-me"
    assert default_name("python3.11") == "python3.11"
