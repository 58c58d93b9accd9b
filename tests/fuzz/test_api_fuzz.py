"""Schemathesis against the web API of a real daemon (issue 9, fuzzing).

One daemon in a home of its own runs three idle children (`a`, and the cluster `b` of `b-0`
and `b-1`, all tests/children/park.py) and `pmdaemon web` serves its API on 127.0.0.1
port 0 behind an API key. Every operation of the OpenAPI document is fuzzed with valid and
invalid data: schemathesis' examples and coverage phases, then a fixed number of generated
cases, seeded and derandomized so CI sends the same requests every run. Each answer must
not be a 5xx, must have a status code and a content type the document declares, and a body
that matches the declared schema; invalid input must be refused with a 4xx.

The document is the one the server serves: the fixture fetches `/api/openapi.json` with
the key and requires it to equal the document the cases are generated from. (Schemathesis
4.32's `from_fixture`, which would load it lazily from the fixture, fails on pytest 9.2:
it sets `Node._nodeid`, which pytest no longer has. So the schema is built at collection
from `openapi_document()`, the function the server serves, and checked against the server
here.)

Safety. The mutating routes (stop, start, restart, reload, delete) are fuzzed on purpose,
but they only act on the parked children: half of the generated path ids are drawn from the
fleet's real ids, names and group names, the rest from the schema (any string). Nothing
here can start an arbitrary command: processes cannot be created over TCP (there is no
`POST /api/processes`, no signal, scale or flush route; the fixture checks that the served
document has none and a test checks that the server refuses them), so the worst a request
can do is restart a parked child, perhaps on another `$PORT` that it never binds. After a
delete succeeds the fleet is rebuilt through the CLI, so later cases still find processes.
Every pid named in any answer joins the runner's list, and teardown fails if one survives
the daemon.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from helpers import Pmd, Web, child, shut_down
from pmdaemon.api.openapi import openapi_document

PY = sys.executable
KEY = "k-fuzz"
SEED = 9
MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
FLEET = {"a", "b-0", "b-1"}
# Names, group names and `all`; the current numeric ids of the fleet (`id_of_NAME`, replaced
# when the case runs, since a rebuilt fleet has new ids); and a few that name nothing.
IDS = ["a", "b", "b-0", "b-1", "all", "id_of_a", "id_of_b-0", "id_of_b-1", "nope", "99999", "-1"]
# The examples and coverage phases do not draw ids from the hook: they use "0", which stops
# naming anything after the first delete. It stands for `a`, wherever it is now.
COVERAGE_ID = "0"

schema = schemathesis.openapi.from_dict(
    openapi_document(),
    config=schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            # Stateful runs are not per operation and are not bounded by max-examples.
            "phases": {"stateful": {"enabled": False}},
        }
    ),
)


@schema.hook
def before_generate_path_parameters(context: Any, strategy: Any) -> Any:
    if "{id}" not in context.operation.path:
        return strategy
    return st.one_of(st.fixed_dictionaries({"id": st.sampled_from(IDS)}), strategy)


@dataclass
class Fleet:
    pmd: Pmd
    url: str = ""
    ids: dict[str, int] = field(default_factory=dict)

    def start(self) -> None:
        for name, extra in (("a", ()), ("b", ("-i", "2"))):
            started = self.pmd.start(
                child("park.py"),
                "--interpreter",
                PY,
                "-n",
                name,
                "--min-uptime",
                "100ms",
                *extra,
            )
            self.ids.update((p["name"], p["id"]) for p in started["processes"])

    def rebuild(self) -> None:
        """Back to a, b-0 and b-1 after a delete took some of them."""
        names = {p["name"] for p in self.pmd.list()}
        if names == FLEET:
            return
        if names:
            self.pmd.run("delete", "all", "-f")
        self.start()

    def note(self, body: Any) -> None:
        """Remember every pid an answer names, so that teardown checks that it is gone."""
        if isinstance(body, list):
            for item in body:
                self.note(item)
        elif isinstance(body, dict):
            pid = body.get("pid")
            if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0:
                self.pmd.seen_pids.add(pid)
            self.note(body.get("processes"))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """One daemon for every operation (a daemon per operation would cost more than the
    fuzzing); its own home, and the `pmd` fixture's teardown checks."""
    fleet = Fleet(Pmd(tmp_path_factory.mktemp("fuzz") / "home"))
    server: Web | None = None
    try:
        fleet.start()
        server = Web(fleet.pmd, "--api-key", KEY)
        fleet.url = server.url
        served = httpx.get(f"{fleet.url}/api/openapi.json", headers={"X-API-Key": KEY})
        assert served.status_code == 200 and served.json() == schema.raw_schema
        paths = served.json()["paths"]
        assert "post" not in paths["/api/processes"], "processes must not be created over TCP"
        assert not any(p.endswith(("/signal", "/scale", "/flush")) for p in paths)
        yield fleet
    finally:
        if server is not None:
            server.stop()
        shut_down(fleet.pmd)


@schema.parametrize()
def test_api_answers_every_request_as_documented(case: Any, fleet: Fleet) -> None:
    ident = (case.path_parameters or {}).get("id")
    if ident == COVERAGE_ID:
        ident = "id_of_a"
    if isinstance(ident, str) and ident.startswith("id_of_"):
        case.path_parameters["id"] = str(fleet.ids[ident.removeprefix("id_of_")])
    response = case.call_and_validate(
        base_url=fleet.url, headers={"X-API-Key": KEY}, checks=CHECKS, timeout=60
    )
    with contextlib.suppress(ValueError):
        fleet.note(response.json())
    if case.method == "DELETE" and response.status_code == 200:
        fleet.rebuild()


def test_routes_that_would_run_commands_are_not_served(fleet: Fleet) -> None:
    with httpx.Client(base_url=fleet.url, headers={"X-API-Key": KEY}, timeout=30) as api:
        created = api.post("/api/processes", json={"config": {"script": "touch /tmp/pwned"}})
        assert created.status_code == 405
        for route in ("signal", "scale", "flush"):
            assert api.post(f"/api/processes/a/{route}", json={}).status_code == 404
    fleet.rebuild()
    assert {p["name"] for p in fleet.pmd.list()} == FLEET
