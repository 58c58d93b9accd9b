"""What leaves the daemon over TCP of a command line or a URL (pmdaemon.redact)."""

from __future__ import annotations

import pytest

from pmdaemon.redact import hide_arguments, hide_command_in, hide_query


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:$PORT/health?token=x", "http://127.0.0.1:$PORT/health?<hidden>"),
        ("https://user:secret@host:8443/h", "https://host:8443/h"),
        ("http://[::1]:3000/h?a=1", "http://[::1]:3000/h?<hidden>"),
        ("http://[::1/x", "http://<hidden>"),  # urlsplit refuses it: never an exception
        ("http://[abc]/", "http://<hidden>"),
        ("not a url at all", "not a url at all"),
    ],
)
def test_hide_query(url: str, shown: str) -> None:
    assert hide_query(url) == shown


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("python3 app.py --token=x", "python3 <hidden>"),
        ("python3\tapp.py\t--token=x", "python3 <hidden>"),  # any whitespace splits
        ("  node\n server.js", "node <hidden>"),
        ("worker", "worker"),
    ],
)
def test_hide_arguments(command: str, shown: str) -> None:
    assert hide_arguments(command) == shown


def test_a_reason_loses_the_command_lines_arguments() -> None:
    reason = 'cannot split script "run \'x --key=s3cret": No closing quotation'
    command = "run 'x --key=s3cret"
    assert "s3cret" not in (hide_command_in(reason, command) or "")
    assert hide_command_in(None, command) is None
