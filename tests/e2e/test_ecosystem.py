"""Ecosystem files through the installed CLI against a real daemon (issue 4)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import PMDAEMON, Pmd, child, wait_until

PY = sys.executable


def two_apps(tmp_path: Path) -> dict:
    return {
        "apps": [
            {
                "name": "api",
                "script": child("env_dump.py"),
                "interpreter": PY,
                "args": [str(tmp_path / "api.json")],
                "env": {"MODE": "dev", "LEVEL": "1"},
                "env_production": {"MODE": "prod"},
                "max_memory_restart": "512M",
                "health_check": {"type": "http", "url": "http://127.0.0.1:3999/health"},
                "kill_timeout": "2s",
            },
            {
                "name": "worker",
                "script": child("park.py"),
                "interpreter": PY,
                "min_uptime": "2s",
                "namespace": "jobs",
                "stop_exit_codes": [0, 3],
            },
        ]
    }


def as_yaml(document: dict) -> str:
    import yaml

    return yaml.safe_dump(document)


def as_toml(document: dict) -> str:
    lines = []
    for app in document["apps"]:
        lines.append("[[apps]]")
        tables = {}
        for key, value in app.items():
            if isinstance(value, dict):
                tables[key] = value
            else:
                lines.append(f"{key} = {json.dumps(value)}")
        for key, table in tables.items():
            lines.append(f"[apps.{key}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def test_json_yaml_and_toml_give_identical_configs(pmd: Pmd, tmp_path: Path) -> None:
    document = two_apps(tmp_path)
    configs = []
    for ext, text in (
        ("json", json.dumps(document)),
        ("yaml", as_yaml(document)),
        ("toml", as_toml(document)),
    ):
        path = tmp_path / f"eco.{ext}"
        path.write_text(text)
        pmd.run("start", str(path))
        configs.append({name: pmd.proc(name)["config"] for name in ("api", "worker")})
        pmd.run("delete", str(path), "-f")
        assert pmd.list() == []
    assert configs[0] == configs[1] == configs[2]
    assert configs[0]["api"]["max_memory_restart"] == 512 * 1024**2
    assert configs[0]["api"]["health_check"]["url"] == "http://127.0.0.1:3999/health"


def test_five_mistakes_five_lines_and_nothing_starts(pmd: Pmd, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("""
apps:
  - name: web
    script: app.py
    max_memory: 100M
    instance: 2
  - name: jobs
    script: jobs.py
    min_uptime: soon
    kill_signal: SIGNOPE
    cron_restart: "0 * * * * * *"
""")
    for command in (["validate", str(path)], ["start", str(path)]):
        result = pmd.run(*command, check=False)
        assert result.returncode == 1
        lines = [x for x in result.stderr.splitlines() if x.startswith("error:")]
        assert len(lines) == 5, result.stderr
        assert "did you mean 'max_memory_restart'" in result.stderr
        assert "did you mean 'instances'" in result.stderr
        assert "Traceback" not in result.stderr
    assert pmd.list() == []


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("big.json", b"{" + b" " * (10 * 1024 * 1024 + 1) + b"}", "at most 10 MiB"),
        ("bin.json", b"\x7fELF\x00\x00", "binary"),
        ("notlist.json", b'{"apps": "web"}', "expected a list"),
        ("empty.json", b'{"apps": []}', "empty"),
        ("dup.yaml", b"apps:\n  - {name: a, script: x}\n  - {name: a, script: y}\n", "duplicate"),
    ],
)
def test_bad_files_are_refused_in_one_sentence(
    pmd: Pmd, tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    result = pmd.run("start", str(path), check=False)
    assert result.returncode == 1 and expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert pmd.daemon_pid() is None or pmd.list() == []


def dump(path: Path) -> dict:
    return wait_until(lambda: path.exists() and json.loads(path.read_text()), what="dump")


def test_profiles_env_file_and_cli_overrides(pmd: Pmd, tmp_path: Path) -> None:
    out = tmp_path / "api.json"
    env_file = tmp_path / "app.env"
    env_file.write_text('# settings\nFROM_FILE=one\nexport QUOTED="two words"\nMODE=file\n')
    path = tmp_path / "eco.json"
    path.write_text(
        json.dumps(
            {
                "apps": [
                    {
                        "name": "api",
                        "script": child("env_dump.py"),
                        "interpreter": PY,
                        "args": [str(out)],
                        "env_file": "app.env",
                        "env": {"MODE": "dev", "LEVEL": "1"},
                        "env_production": {"MODE": "prod", "LEVEL": "2"},
                    },
                ]
            }
        )
    )
    pmd.run(
        "start", str(path), "--env-name", "production", "-e", "LEVEL=cli", "--max-restarts", "7"
    )
    env = dump(out)["env"]
    assert env["MODE"] == "prod" and env["LEVEL"] == "cli"  # profile < -e
    assert env["FROM_FILE"] == "one" and env["QUOTED"] == "two words"
    assert pmd.proc("api")["config"]["max_restarts"] == 7  # flags override the file
    env_file.write_text("FROM_FILE=changed\n")
    out.unlink()
    pmd.run("restart", "api")
    assert dump(out)["env"]["FROM_FILE"] == "changed"  # read on every start
    env_file.write_text("not a pair\n")
    result = pmd.run("restart", "api", check=False)
    assert result.returncode == 1 and "line 1" in result.stderr
    assert pmd.proc("api")["status"] == "errored"


def test_pmdaemon_env_variable_selects_the_profile(pmd: Pmd, tmp_path: Path) -> None:
    out = tmp_path / "api.json"
    path = tmp_path / "eco.yaml"
    path.write_text(f"""
apps:
  - name: api
    script: {child("env_dump.py")}
    interpreter: {PY}
    args: [{out}]
    env: {{MODE: dev}}
    env_staging: {{MODE: staging}}
""")
    pmd.env["PMDAEMON_ENV"] = "staging"
    pmd.run("start", str(path))
    assert dump(out)["env"]["MODE"] == "staging"


def test_config_flag_start_by_name_and_file_commands(pmd: Pmd, tmp_path: Path) -> None:
    path = tmp_path / "eco.json"
    path.write_text(json.dumps(two_apps(tmp_path)))
    pmd.run("--config", str(path), "start", "--name", "worker")
    assert [p["name"] for p in pmd.list()] == ["worker"]
    pmd.run("start", str(path))
    assert [p["name"] for p in pmd.list()] == ["worker", "api"]
    pids = {p["name"]: p["pid"] for p in pmd.list()}
    pmd.run("restart", str(path))
    assert all(p["pid"] != pids[p["name"]] for p in pmd.list())
    pmd.run("stop", str(path))
    assert {p["status"] for p in pmd.list()} == {"stopped"}
    result = pmd.run("start", str(path))  # existing apps are started as they are
    assert {p["status"] for p in pmd.list()} == {"online"}
    assert "existed already and kept their configuration" in result.stderr
    pmd.run("delete", str(path))
    assert pmd.list() == []
    result = pmd.run("--config", str(path), "start", "--name", "nope", check=False)
    assert result.returncode == 1 and "no app named 'nope'" in result.stderr


def test_memory_limit_restarts_the_tree(pmd: Pmd) -> None:
    pmd.start(child("hog.py"), "--interpreter", PY, "-n", "hog", "--", "20", "300")
    path = pmd.home.parent / "limit.json"
    path.write_text(
        json.dumps(
            {
                "apps": [
                    {
                        "name": "capped",
                        "script": child("hog.py"),
                        "interpreter": PY,
                        "args": ["20", "300"],
                        "max_memory_restart": "100M",
                    }
                ]
            }
        )
    )
    pmd.run("start", str(path))
    info = wait_until(
        lambda: (p := pmd.proc("capped"))["restarts"] >= 1 and p, timeout=30, what="memory restart"
    )
    assert info["last_restart_reason"].startswith("memory limit (used ")
    assert "> limit 100.0 MiB" in info["last_restart_reason"]
    # Without a limit the same app grows past 100M and is left alone.
    hog = wait_until(
        lambda: (p := pmd.proc("hog"))["memory_usage"] > 200 * 1024**2 and p,
        timeout=30,
        what="hog grows",
    )
    assert hog["restarts"] == 0


def test_validate_reports_a_valid_file(tmp_path: Path) -> None:
    examples = Path(__file__).parents[2] / "examples"
    for name in ("ecosystem.json", "ecosystem.yaml", "ecosystem.toml"):
        result = subprocess.run(
            [PMDAEMON, "validate", str(examples / name)], capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 0 and "3 app(s) valid: worker, web, health" in result.stdout
