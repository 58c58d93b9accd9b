"""Ecosystem files that try to break the loader: each gets one short sentence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pmdaemon import config


def problems(path: Path, **kw: object) -> list[str]:
    with pytest.raises(config.EcosystemError) as err:
        config.load(path, **kw)  # type: ignore[arg-type]
    return [str(p) for p in err.value.problems]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yaml_alias_bomb_is_refused_briefly(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, 8):
        lines.append(f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]")
    lines.append("apps:\n  - script: a.py\n    autorestart: *a7")
    found = problems(write(tmp_path, "bomb.yaml", "\n".join(lines)))
    assert len(found) == 1  # the bad autorestart (unknown top-level keys are warnings)
    assert any("autorestart" in p for p in found)
    assert all(len(p) < 400 for p in found)


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    for name, text in (("deep.json", "[" * 100_000), ("deep.toml", "a = " + "[" * 100_000)):
        [found] = problems(write(tmp_path, name, text))
        assert "nested too deeply" in found or "not valid" in found


def test_non_finite_numbers_are_refused(tmp_path: Path) -> None:
    [found] = problems(
        write(tmp_path, "inf.yaml", "apps:\n  - script: a.py\n    env: {RATIO: .inf}\n")
    )
    assert "finite" in found
    [found] = problems(write(tmp_path, "nan.yaml", "apps:\n  - script: a.py\n    args: [.nan]\n"))
    assert "finite" in found


def test_a_profile_never_hides_an_invalid_env(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "env.yaml",
        "apps:\n  - script: a.py\n    env: NODE_ENV=prod\n    env_prod: {A: '1'}\n",
    )
    assert problems(path, env_name="prod")
    assert problems(path, overrides={"env": {"B": "2"}})


def test_flags_apply_only_to_the_selected_app(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "two.json",
        json.dumps(
            {
                "apps": [
                    {"name": "api", "script": "a.py", "port": "4100-4101"},
                    {"name": "worker", "script": "w.py", "port": 4200},
                ]
            }
        ),
    )
    [api] = config.load(path, overrides={"instances": 2}, only="api")
    assert api.spec.instances == 2


def test_yaml_booleans_in_args_are_written_as_words(tmp_path: Path) -> None:
    path = write(
        tmp_path, "args.yaml", "apps:\n  - script: a.py\n    args: [--color, on, --verbose, no]\n"
    )
    assert config.load(path)[0].spec.args == ("--color", "true", "--verbose", "false")


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    [found] = problems(
        write(tmp_path, "dup.json", '{"apps": [{"script": "a.py", "port": 1, "port": 2}]}')
    )
    assert "'port' appears twice" in found
    [found] = problems(
        write(tmp_path, "dup.yaml", "apps:\n  - script: a.py\n    instances: 1\n    instances: 2\n")
    )
    assert "'instances' appears twice" in found


def test_huge_numbers_are_refused_without_python_advice(tmp_path: Path) -> None:
    [found] = problems(
        write(tmp_path, "big.json", '{"apps": [{"script": "a.py", "port": ' + "9" * 5000 + "}]}")
    )
    assert "too many digits" in found and "sys." not in found
    found = problems(
        write(tmp_path, "long.json", '{"apps": [{"script": "a.py", "port": ' + "9" * 4000 + "}]}")
    )
    assert len(found[0]) < 300


def test_instance_names_may_not_collide_with_other_apps(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "clash.json",
        json.dumps(
            {
                "apps": [
                    {"name": "web", "script": "a.py", "instances": 2},
                    {"name": "web-0", "script": "b.py"},
                ]
            }
        ),
    )
    [found] = problems(path)
    assert "apps[0]" in found and "'web-0'" in found


def test_cluster_names_stay_within_64_characters(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "long.json",
        json.dumps({"apps": [{"name": "n" * 64, "script": "a.py", "instances": 2}]}),
    )
    [found] = problems(path)
    assert "longer than 64" in found


def test_file_names_for_stop_and_delete_are_read_leniently(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "loose.json",
        json.dumps(
            {
                "apps": [
                    {"name": "api", "script": "a.py", "max_memory": "oops"},
                    {"script": "worker.py"},
                ]
            }
        ),
    )
    assert config.app_names(path) == ["api", "worker"]


def test_cross_field_port_problems_come_with_the_others(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "both.json",
        json.dumps(
            {
                "apps": [
                    {
                        "name": "web",
                        "script": "a.py",
                        "max_memory": "100M",
                        "instances": 3,
                        "port": "9000-9001",
                    }
                ]
            }
        ),
    )
    found = problems(path)
    assert len(found) == 2
    assert any("max_memory" in p for p in found)
    assert any("2 port(s) for 3 instances" in p for p in found)
