"""Ecosystem files: formats, strict and complete validation, profiles, the schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from pmdaemon import config
from pmdaemon.schema import PACKAGED, render

EXAMPLES = Path(__file__).parents[2] / "examples"
SCHEMA = json.loads((Path(__file__).parents[2] / "schema" / "ecosystem.schema.json").read_text())

TWO_APPS = {
    "json": json.dumps(
        {
            "apps": [
                {
                    "name": "api",
                    "script": "api.py",
                    "args": ["--fast"],
                    "port": 3000,
                    "env": {"LEVEL": "info", "N": 3},
                    "max_memory_restart": "512M",
                    "health_check_url": "http://127.0.0.1:3000/health",
                    "health_check_retries": 5,
                },
                {
                    "name": "worker",
                    "script": "node",
                    "args": ["worker.js"],
                    "min_uptime": "2s",
                    "stop_exit_codes": [0, 3],
                    "kill_signal": "SIGINT",
                    "namespace": "jobs",
                },
            ]
        }
    ),
    "yaml": """
apps:
  - name: api
    script: api.py
    args: [--fast]
    port: 3000
    env: {LEVEL: info, N: 3}
    max_memory_restart: 512M
    health_check_url: http://127.0.0.1:3000/health
    health_check_retries: 5
  - name: worker
    script: node
    args: [worker.js]
    min_uptime: 2s
    stop_exit_codes: [0, 3]
    kill_signal: SIGINT
    namespace: jobs
""",
    "toml": """
[[apps]]
name = "api"
script = "api.py"
args = ["--fast"]
port = 3000
max_memory_restart = "512M"
health_check_url = "http://127.0.0.1:3000/health"
health_check_retries = 5
[apps.env]
LEVEL = "info"
N = 3

[[apps]]
name = "worker"
script = "node"
args = ["worker.js"]
min_uptime = "2s"
stop_exit_codes = [0, 3]
kill_signal = "SIGINT"
namespace = "jobs"
""",
}


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def problems(path: Path, **kw: object) -> list[str]:
    with pytest.raises(config.EcosystemError) as err:
        config.load(path, **kw)  # type: ignore[arg-type]
    return [str(p) for p in err.value.problems]


def test_the_three_formats_give_identical_specs(tmp_path: Path) -> None:
    specs = {}
    for ext, text in TWO_APPS.items():
        apps = config.load(write(tmp_path, f"eco.{ext}", text))
        specs[ext] = [app.spec for app in apps]
    assert specs["json"] == specs["yaml"] == specs["toml"]
    api = specs["json"][0]
    assert api.max_memory_restart == 512 * 1024**2 and api.env == {"LEVEL": "info", "N": "3"}
    assert api.health_check is not None and api.health_check.retries == 5
    assert api.cwd == str(tmp_path)  # relative to the file, not to where the CLI runs


def test_five_mistakes_give_five_lines_with_suggestions(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "bad.json",
        json.dumps(
            {
                "apps": [
                    {"name": "web", "script": "app.py", "max_memory": "100M", "instance": 2},
                    {"name": "jobs", "script": "jobs.py", "min_uptime": "soon", "port": 0},
                    {"name": "cron", "script": "c.py", "cron_restart": "0 25 * * *"},
                ]
            }
        ),
    )
    found = problems(path)
    assert len(found) == 5, found
    assert any("'max_memory'" in p and "did you mean 'max_memory_restart'" in p for p in found)
    assert any("'instance'" in p and "did you mean 'instances'" in p for p in found)
    assert any("apps[1] (jobs)" in p and "min_uptime 'soon'" in p for p in found)
    assert any("apps[1] (jobs)" in p and "port 0" in p and "1 to 65535" in p for p in found)
    assert any("cron_restart '0 25 * * *'" in p and "hour field" in p for p in found)
    assert all(p.startswith(f"{path}: apps[") for p in found)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("big.json", b"{" + b" " * (10 * 1024 * 1024 + 1) + b"}", "at most 10 MiB"),
        ("bin.json", b"\x00\x01\x02binary", "binary content"),
        ("latin.yaml", "apps: [{script: caf\xe9}]".encode("latin-1"), "not UTF-8"),
        ("list.json", b'{"apps": "x"}', "expected a list of app objects"),
        ("empty.yaml", b"apps: []", "the list is empty"),
        ("noapps.toml", b'name = "x"', "top-level 'apps' list"),
        (
            "dup.json",
            b'{"apps": [{"script": "a.py"}, {"name": "a", "script": "b.py"}]}',
            "duplicate name",
        ),
        ("broken.json", b'{"apps": [', "not valid JSON"),
        ("broken.yaml", b"apps: [\n  - {", "not valid YAML"),
        ("broken.toml", b"[[apps]\n", "not valid TOML"),
        ("eco.config.js", b"module.exports = {apps: []}", "the list is empty"),
        ("eco.ts", b"export default {}", "unsupported file type '.ts'"),
        ("scalar.yaml", b"42", "top-level 'apps' list"),
        ("item.json", b'{"apps": [5]}', "expected an app object"),
        ("noscript.json", b'{"apps": [{"name": "x"}]}', "script: missing"),
    ],
)
def test_refused_files_say_why_in_one_sentence(
    tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    found = problems(write(tmp_path, name, content))
    assert len(found) == 1 and expected in found[0], found
    assert "\n" not in found[0]


def test_profiles_overrides_and_selection(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "eco.yaml",
        """
apps:
  - name: api
    script: api.py
    env: {MODE: dev, KEEP: yes}
    env_production: {MODE: prod}
  - name: other
    script: other.py
""",
    )
    api = config.load(path, env_name="production")[0].spec
    assert api.env == {"MODE": "prod", "KEEP": "true"}
    api = config.load(path, env_name="production", overrides={"env": {"MODE": "cli"}})[0].spec
    assert api.env["MODE"] == "cli"  # -e beats the file
    assert [a.spec.name for a in config.load(path, only="other")] == ["other"]
    assert "no app named 'nope'" in problems(path, only="nope")[0]
    assert "no app has an env_staging block" in problems(path, env_name="staging")[0]
    over = config.load(path, overrides={"max_restarts": "3"})
    assert {a.spec.max_restarts for a in over} == {3}


def test_pmdaemon_and_pm2_shapes_load(tmp_path: Path) -> None:
    pmdaemon = write(
        tmp_path,
        "pmdaemon.json",
        json.dumps(
            {
                "apps": [
                    {
                        "name": "web-cluster",
                        "script": "node",
                        "args": ["server.js"],
                        "instances": 1,
                        "port": "3000",
                        "max_memory_restart": "512M",
                        "env": {"NODE_ENV": "production"},
                    }
                ]
            }
        ),
    )
    assert config.load(pmdaemon)[0].spec.args == ("server.js",)
    pm2 = write(
        tmp_path,
        "pm2.yaml",
        """
apps:
  - name: api
    script: ./api.js
    args: "--port 80 --verbose"
    exec_interpreter: node
    instances: 1
    autorestart: true
    max_restarts: 10
    min_uptime: 5000
    restart_delay: 1000
    kill_timeout: 3000
    error_file: ./logs/err.log
    out_file: ./logs/out.log
    log_date_format: "YYYY-MM-DD HH:mm Z"
    env:
      NODE_ENV: development
    env_production:
      NODE_ENV: production
""",
    )
    spec = config.load(pm2, env_name="production")[0].spec
    assert spec.args == ("--port", "80", "--verbose") and spec.interpreter == "node"
    assert spec.min_uptime == 5.0 and spec.kill_timeout == 3.0
    assert spec.env == {"NODE_ENV": "production"}


def test_log_fields_are_checked(tmp_path: Path) -> None:
    def load(extra: dict[str, object]) -> list[str]:
        path = write(tmp_path, "eco.json", json.dumps({"apps": [{"script": "a.py", **extra}]}))
        try:
            [app] = config.load(path)
        except config.EcosystemError as exc:
            return [p.message for p in exc.problems]
        assert not app.warnings  # every log field acts now
        return []

    assert load({"time": True, "max_log_size": "5M", "log_date_format": "YYYY-MM-DD HH:mm Z"}) == []
    assert load({"log_date_format": "%Y-%m-%d %H:%M:%S"}) == []
    [problem] = load({"log_date_format": "yyyy-mm-dd"})
    assert "log_date_format" in problem and "'y' is not a date token" in problem
    [problem] = load({"log_date_format": "[no tokens]"})
    assert "no date or time token" in problem
    [problem] = load({"max_log_size": "100"})
    assert "max_log_size" in problem and "1K" in problem


def test_schema_is_current_and_shipped() -> None:
    committed = (Path(__file__).parents[2] / "schema" / "ecosystem.schema.json").read_text()
    assert committed == render(), "stale: run `python -m pmdaemon.schema --write`"
    assert PACKAGED.read_text() == committed


def test_schema_accepts_the_examples_and_rejects_the_bad() -> None:
    import tomllib

    import yaml

    validator = jsonschema.Draft202012Validator(SCHEMA)
    examples = [
        json.loads((EXAMPLES / "ecosystem.json").read_text()),
        yaml.safe_load((EXAMPLES / "ecosystem.yaml").read_text()),
        tomllib.loads((EXAMPLES / "ecosystem.toml").read_text()),
    ]
    for document in examples:
        validator.validate(document)
    for text in TWO_APPS.values():
        document = (
            json.loads(text)
            if text.startswith("{")
            else (yaml.safe_load(text) if text.lstrip().startswith("apps") else tomllib.loads(text))
        )
        validator.validate(document)
    bad = [
        {"apps": []},
        {"apps": [{"name": "x"}]},
        {"apps": [{"script": "a", "max_memory": "1G"}]},
        {"apps": [{"script": "a", "port": 70000}]},
        {"apps": [{"script": "a", "min_uptime": "soon"}]},
        {"apps": [{"script": "a", "instances": -1025}]},
        {"apps": [{"script": "a", "name": "../x"}]},
        {"apps": [{"script": "a", "health_check": {"type": "tcp"}}]},
        {"apps": [{"script": "a", "max_memory_restart": "lots"}]},
        {"apps": "a"},
        {"apps": [{"script": "a", "cron_restart": "0 3 * *"}]},
    ]
    for document in bad:
        assert not validator.is_valid(document), document
