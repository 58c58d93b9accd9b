"""Defects the ecosystem fuzzer (tests/fuzz/test_config_fuzz.py) found, one test each."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pmdaemon import config


def problems(tmp_path: Path, document: Any) -> list[str]:
    path = tmp_path / "eco.json"
    path.write_text(json.dumps(document))
    with pytest.raises(config.EcosystemError) as err:
        config.load(path)
    return [str(p).removeprefix(f"{path}: ") for p in err.value.problems]


def test_control_characters_in_keys_and_names_never_reach_the_terminal_raw(
    tmp_path: Path,
) -> None:
    found = problems(
        tmp_path,
        {
            "apps": [
                {"script": "a.py", "\x1f": None},
                {"name": "a\nb", "script": "b.py"},
                {"script": "c\x1b[2J.py", "port": 0},
                {"script": "d.py", "health_check": {"url": "http://x", "\x1b[31mred": 1}},
                {"script": "e.py", "env": {"A\nB": {"x": 1}}},
            ],
            "ex\ntra": 1,
        },
    )
    assert found == [
        "apps[0] (a): unknown field '\\x1f'",
        "apps[1] ('a\\nb'): invalid name 'a\\nb': expected 1 to 64 letters, digits, spaces, "
        "'_', '.', '-', ':', '@' or '+' (first a letter, digit or '_', no space last; not all "
        "digits, not 'all')",
        "apps[2] ('c\\x1b[2J'): invalid port 0: expected a port from 1 to 65535 (3000), a range "
        '("3000-3003") or an automatic range ("auto:5000-5100")',
        "apps[3] (d): unknown field health_check.'\\x1b[31mred': accepted type, check_type, "
        "url, script, timeout, interval, retries, enabled",
        "apps[4] (e): invalid env.'A\\nB': expected a string or number, got dict",
    ]
    assert all(line.isprintable() for line in found)


def test_a_wide_nest_of_long_strings_is_shown_briefly(tmp_path: Path) -> None:
    wide = {f"k{i}": {f"j{j}": "x" * 100 for j in range(4)} for i in range(4)}
    [found] = problems(tmp_path, {"apps": [{"script": "a.py", "name": wide}]})
    assert found.startswith("apps[0] (a): invalid name {'k0': {'j0': 'xxx")
    assert len(found) < 300  # it was 2,000 characters


def test_yaml_merge_keys_are_read(tmp_path: Path) -> None:
    path = tmp_path / "eco.yaml"
    path.write_text(
        "apps:\n"
        "  - &base\n"
        "    name: api\n"
        "    script: api.py\n"
        "    interpreter: python3\n"
        "    env: {LEVEL: info}\n"
        "  - <<: *base\n"
        "    name: worker\n"
        "    script: worker.py\n"
    )
    api, worker = (app.spec for app in config.load(path))
    assert (worker.name, worker.script, worker.interpreter) == ("worker", "worker.py", "python3")
    assert worker.env == api.env == {"LEVEL": "info"}
    path.write_text("apps:\n  - &base {name: a, script: a.py}\n  - {<<: *base, name: b, name: c}\n")
    with pytest.raises(config.EcosystemError) as err:
        config.load(path)  # a merge key does not hide a key written twice beside it
    [found] = [str(p) for p in err.value.problems]
    assert "the key 'name' appears twice" in found
