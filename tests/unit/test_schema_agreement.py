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
    (app(instances=0), False),
    (app(autorestart="maybe"), False),
]


@pytest.mark.parametrize(("document", "valid"), CASES)
def test_schema_and_loader_agree(tmp_path: Path, document: dict[str, Any], valid: bool) -> None:
    path = tmp_path / "eco.json"
    path.write_text(json.dumps(document))
    try:
        config.load(path)
        loaded = True
    except config.EcosystemError:
        loaded = False
    assert VALIDATOR.is_valid(document) == valid, "schema"
    assert loaded == valid, "loader"
