"""PMDaemon's own example script (examples/test_all_formats.sh of entrepeneur4lyf/pmdaemon),
run unchanged against pmdaemon: it starts apps from JSON, YAML and TOML files with --config
and --name, lists them, and deletes everything with --force."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from helpers import PMDAEMON, Pmd, reference_file

DATA = Path(__file__).parent / "data" / "pmdaemon-scripts"
# The fixed ports and ranges the script's files name.
PORTS = [3000, 4000, 4001, 6000, 7000, 7001, 7002, 7003]
SCRATCH = ["test.json", "test.yaml", "test.toml", "memory-test.json", "port-test.yaml"]


def busy(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return True
    return False


def test_pmdaemons_test_all_formats_script_runs_unchanged(pmd: Pmd, tmp_path: Path) -> None:
    """examples/test_all_formats.sh: every step succeeds and the apps were started."""
    taken = [p for p in PORTS if busy(p)]
    if taken:
        pytest.skip(f"the script's fixed ports are in use here: {taken}")
    if any(Path("/tmp", name).exists() for name in [*SCRATCH, "bulk-test.json"]):
        pytest.skip("another run of the script's /tmp files is in progress")
    work = tmp_path / "checkout"
    (work / "examples").mkdir(parents=True)
    (work / "target" / "release").mkdir(parents=True)
    for name in ("test_all_formats.sh", "ecosystem.json"):
        shutil.copy(reference_file(DATA, "pmdaemon-scripts", name), work / "examples")
    (work / "target" / "release" / "pmdaemon").symlink_to(PMDAEMON)
    shims = tmp_path / "bin"
    shims.mkdir()
    (shims / "cargo").write_text("#!/bin/sh\nexit 0\n")  # the build step: nothing to build
    (shims / "cargo").chmod(0o755)
    env = {**pmd.env, "PATH": f"{shims}:{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "examples/test_all_formats.sh"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "All Configuration Format Tests Completed Successfully" in result.stdout
    listed = result.stdout.split("7. Listing All Started Processes")[1]
    for name in ("json-test", "yaml-test-0", "toml-test", "memory-g", "port-range-3", "bulk-app-3"):
        assert name in listed, name
    assert pmd.list() == []  # its `delete all --force` left nothing
