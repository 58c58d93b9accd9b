"""The daemon's side of the log keeper (KeeperLogs) against a real keeper process, and
against a keeper that only speaks the older one-pipe-per-message protocol."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import wait_until
from pmdaemon.logpipes import KeeperLogs, KeeperRefused, LogSettings, Outputs

SETTINGS = LogSettings(max_size=1 << 20, max_files=3, stamp=None)


@pytest.fixture
def logs(tmp_path: Path) -> Iterator[KeeperLogs]:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    keeper_logs = KeeperLogs(home, home / "daemon.log")
    yield keeper_logs
    keeper_logs.close()
    if keeper_logs.keeper is not None:  # it ends once its pipes have
        keeper_logs.keeper.wait(timeout=10)


def write_and_close(outputs: Outputs, out: bytes, err: bytes) -> None:
    os.write(outputs.stdout, out)
    os.write(outputs.stderr, err)
    outputs.close_child_ends()


def stats(logs: KeeperLogs) -> dict[str, object]:
    return logs.request({"op": "stats"})


def test_a_childs_two_pipes_go_to_the_keeper_in_one_message(
    logs: KeeperLogs, tmp_path: Path
) -> None:
    out, err = tmp_path / "logs" / "a-out.log", tmp_path / "logs" / "a-error.log"
    outputs = logs.outputs(out, err, SETTINGS)
    assert stats(logs)["sources"] == 2
    write_and_close(outputs, b"to out\n", b"to err\n")
    wait_until(lambda: out.exists() and out.read_bytes() == b"to out\n", what="out written")
    wait_until(lambda: err.exists() and err.read_bytes() == b"to err\n", what="err written")
    logs.release(outputs.streams)
    wait_until(lambda: stats(logs)["sources"] == 0, what="the pipes ended")


def test_pipes_handed_over_later_keep_what_was_written_before(
    logs: KeeperLogs, tmp_path: Path
) -> None:
    logs.ensure()
    out, err = tmp_path / "b-out.log", tmp_path / "b-error.log"
    outputs = logs.outputs(out, err, SETTINGS, check=False, later=True)
    assert outputs.later and stats(logs)["sources"] == 0
    os.write(outputs.stdout, b"early line\n")  # waits in the pipe
    logs.settle(outputs)
    assert not outputs.later and stats(logs)["sources"] == 2
    write_and_close(outputs, b"late line\n", b"")
    wait_until(lambda: out.exists() and out.read_bytes() == b"early line\nlate line\n")
    logs.release(outputs.streams)


def test_a_path_the_keeper_cannot_open_refuses_every_pipe_of_the_message(
    logs: KeeperLogs, tmp_path: Path
) -> None:
    logs.ensure()
    good = tmp_path / "c-out.log"
    (tmp_path / "blocker").write_text("a file, so nothing can be created under it")
    bad = tmp_path / "blocker" / "c-error.log"
    outputs = logs.outputs(good, bad, SETTINGS, check=False, later=True)
    with pytest.raises(KeeperRefused, match="cannot open"):
        logs.settle(outputs)
    after = stats(logs)  # all or nothing: the good path was not taken either
    assert after["sources"] == 0 and after["files"] == []
    logs.release(outputs.streams)
    outputs.close_child_ends()


def test_a_malformed_attach_is_refused_and_the_keeper_goes_on(
    logs: KeeperLogs, tmp_path: Path
) -> None:
    sock = logs.ensure()
    read_end, write_end = os.pipe()
    try:
        message = {"op": "attach_each", "paths": ["x", "y"], "max_size": 1024, "max_files": 1}
        socket.send_fds(sock, [json.dumps(message).encode()], [read_end])
        reply = json.loads(sock.recv(65536))
        assert reply["ok"] is False and "one path per pipe" in reply["error"]
    finally:
        os.close(read_end)
        os.close(write_end)
    assert stats(logs)["sources"] == 0
    outputs = logs.outputs(tmp_path / "d.log", tmp_path / "d.log", SETTINGS)
    assert stats(logs)["sources"] == 1  # stdout and stderr share the one file: one pipe
    write_and_close(outputs, b"still works\n", b"")
    logs.release(outputs.streams)


class OldKeeper:
    """A keeper of the earlier protocol: ``attach`` with one path (and ``bye``), nothing
    else."""

    def __init__(self, path: Path) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind(str(path))
        self.listener.listen(1)
        self.attached: list[tuple[str, int]] = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            while True:
                raw, fds, _, _ = socket.recv_fds(conn, 65536, 4)
                if not raw:
                    return
                message = json.loads(raw)
                if message["op"] == "bye":
                    continue
                if message["op"] == "attach" and len(fds) == 1:
                    self.attached.append((message["path"], fds[0]))
                    conn.send(b'{"ok": true}')
                else:
                    for fd in fds:
                        os.close(fd)
                    conn.send(json.dumps({"ok": False, "error": "unknown op"}).encode())

    def close(self) -> None:
        self.listener.close()
        for _, fd in self.attached:
            os.close(fd)


def test_a_keeper_of_the_older_protocol_gets_one_pipe_per_message(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    old = OldKeeper(home / "logkeeper.sock")
    logs = KeeperLogs(home, home / "daemon.log")
    try:
        out, err = tmp_path / "e-out.log", tmp_path / "e-error.log"
        outputs = logs.outputs(out, err, SETTINGS)
        assert [path for path, _ in old.attached] == [str(out), str(err)]
        assert logs.batch is False and len(outputs.streams) == 2
        outputs.close_child_ends()
        logs.release(outputs.streams)
    finally:
        logs.close()
        old.thread.join(timeout=10)
        old.close()
