from __future__ import annotations

import stat
from pathlib import Path

import pytest

from pmdaemon.errors import DaemonStartError
from pmdaemon.model import Desired, ProcessSpec
from pmdaemon.store import ProcessRecord, StateFile, Store


def record(i: int) -> ProcessRecord:
    return ProcessRecord(
        id=i,
        spec=ProcessSpec(name=f"p{i}", script="x"),
        base_env={"A": "1"},
        desired=Desired.RUNNING,
        created_at=1.0,
    )


def test_round_trip_keeps_previous_generation(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.json", tmp_path / "state.json.prev")
    assert store.load() == StateFile()
    store.save(StateFile(next_id=1, processes=[record(0)]))
    store.save(StateFile(next_id=2, processes=[record(0), record(1)]))
    assert store.load().next_id == 2
    assert Store(tmp_path / "state.json.prev", tmp_path / "none").load().next_id == 1
    assert stat.S_IMODE((tmp_path / "state.json").stat().st_mode) == 0o600
    assert not (tmp_path / "state.json.tmp").exists()


def test_corrupt_file_falls_back_to_previous_and_is_kept(tmp_path: Path) -> None:
    store = Store(tmp_path / "state.json", tmp_path / "state.json.prev")
    store.save(StateFile(next_id=1, processes=[record(0)]))
    store.save(StateFile(next_id=2, processes=[record(0), record(1)]))
    (tmp_path / "state.json").write_bytes(b'{"version": 1, "next_')
    assert store.load().next_id == 1
    assert list(tmp_path.glob("state.json.corrupt-*"))


def test_newer_format_is_refused(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text('{"version": 99}')
    with pytest.raises(DaemonStartError, match="newer pmdaemon"):
        Store(tmp_path / "state.json", tmp_path / "state.json.prev").load()
