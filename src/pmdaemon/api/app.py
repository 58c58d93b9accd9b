"""Routes over the Supervisor. The control app (Unix socket, owner only) carries creation
and the environment-bearing routes; everything speaks the JSON shapes of SPEC §11.3."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from pmdaemon import logfiles
from pmdaemon.api.errors import http_error, internal_error, json_response, pmd_error
from pmdaemon.errors import InvalidInput, PmdError
from pmdaemon.managed import ManagedProcess
from pmdaemon.model import ProcessState
from pmdaemon.supervisor import Supervisor

MAX_BODY = 1024 * 1024
MAX_LOG_LINES = 10_000


@dataclass
class DaemonControl:
    """What the daemon itself offers the control routes."""

    status: Callable[[], dict[str, Any]]
    shutdown: Callable[[], Coroutine[Any, Any, None]]


async def read_json(request: Request, *, required: bool = False) -> dict[str, Any]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise HTTPException(413, f"request body larger than {MAX_BODY // 1024} KiB")
    if not body.strip():
        if required:
            raise InvalidInput("missing JSON body: expected an object")
        return {}
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise InvalidInput("malformed JSON body: expected a JSON object") from None
    if not isinstance(data, dict):
        raise InvalidInput("invalid JSON body: expected an object")
    return data


def _str_map(value: Any, field: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidInput(f"invalid {field}: expected an object of strings")
    return value


def detail(proc: ManagedProcess) -> dict[str, Any]:
    view = proc.view()
    spec = msgspec.structs.asdict(proc.spec)
    # Environment values can hold secrets: only the names leave the daemon.
    spec["env"] = sorted(spec["env"])
    spec["kill_signal"] = proc.spec.kill_signal
    view["config"] = spec
    view["desired_state"] = proc.desired.value
    view["last_error"] = proc.last_error
    view["exit_signal"] = proc.exit_signal
    view["health_check"] = None
    view["logs"] = {"out": str(proc.out_log), "error": str(proc.error_log)}
    view["restart_history"] = [msgspec.structs.asdict(r) for r in proc.history]
    return view


def action_result(message: str, procs: list[ManagedProcess]) -> Response:
    return json_response(
        {"success": True, "message": message, "processes": [p.view() for p in procs]}
    )


def build_control_app(supervisor: Supervisor, control: DaemonControl) -> Starlette:
    sup = supervisor

    async def list_processes(request: Request) -> Response:
        procs = sup.sorted()
        status = request.query_params.get("status")
        if status is not None:
            if status not in ProcessState.__members__.values():
                raise InvalidInput(
                    f"invalid status {status[:32]!r}: expected one of "
                    + ", ".join(s.value for s in ProcessState)
                )
            procs = [p for p in procs if p.state == status]
        for key in ("name", "namespace"):
            value = request.query_params.get(key)
            if value is not None:
                procs = [p for p in procs if getattr(p.spec, key) == value]
        return json_response([p.view() for p in procs])

    async def create(request: Request) -> Response:
        body = await read_json(request, required=True)
        config = body.get("config")
        if not isinstance(config, dict):
            raise InvalidInput("invalid body: expected {'config': {...}, 'env': {...}, 'cwd': ...}")
        env = _str_map(body.get("env", {}), "env")
        cwd = body.get("cwd", "/")
        if not isinstance(cwd, str) or not os.path.isabs(cwd):
            raise InvalidInput("invalid cwd: expected an absolute path")
        proc = await sup.create(config, env, cwd)
        return json_response(
            {
                "success": True,
                "message": "Process started successfully",
                "processes": [proc.view()],
            },
            201,
        )

    async def get_process(request: Request) -> Response:
        procs = sup.resolve(request.path_params["id"])
        if len(procs) == 1:
            return json_response(detail(procs[0]))
        return json_response([detail(p) for p in procs])

    async def start(request: Request) -> Response:
        procs = await sup.start(request.path_params["id"])
        return action_result("Process started successfully", procs)

    async def stop(request: Request) -> Response:
        procs = await sup.stop(request.path_params["id"])
        return action_result("Process stopped successfully", procs)

    async def restart(request: Request) -> Response:
        body = await read_json(request)
        env = _str_map(body["env"], "env") if "env" in body else None
        procs = await sup.restart(request.path_params["id"], env)
        return action_result("Process restarted successfully", procs)

    async def delete(request: Request) -> Response:
        procs = await sup.delete(request.path_params["id"])
        return json_response(
            {
                "success": True,
                "message": "Process deleted successfully",
                "processes": [p.view() for p in procs],
            }
        )

    async def send_signal(request: Request) -> Response:
        body = await read_json(request, required=True)
        name = body.get("signal")
        if not isinstance(name, str | int) or isinstance(name, bool):
            raise InvalidInput("invalid signal: expected a name such as SIGUSR1, or a number")
        procs = sup.signal(request.path_params["id"], str(name))
        return action_result(f"Signal {str(name).upper()} sent", procs)

    async def logs(request: Request) -> Response:
        ident = request.path_params.get("id") or request.query_params.get("id") or "all"
        procs = sup.resolve(ident) if ident != "all" or sup.processes else []
        lines = _int_param(request, "lines", 20, 0, MAX_LOG_LINES)
        kind = request.query_params.get("type", "all")
        if kind not in ("out", "error", "all"):
            raise InvalidInput(f"invalid type {kind[:32]!r}: expected out, error or all")
        files = [
            (p, t, path)
            for p in procs
            for t, path in (("out", p.out_log), ("error", p.error_log))
            if kind in ("all", t)
        ]
        if request.query_params.get("follow") not in ("1", "true"):
            entries = [
                {"timestamp": None, "type": t, "name": p.spec.name, "id": p.id, "message": line}
                for p, t, path in files
                for line in logfiles.tail(path, lines)
            ]
            return json_response({"logs": entries, "total_lines": len(entries)})
        return StreamingResponse(_follow(files, lines), media_type="application/x-ndjson")

    async def daemon_status(request: Request) -> Response:
        return json_response(control.status())

    async def daemon_kill(request: Request) -> Response:
        restore = sum(1 for p in sup.processes.values() if p.desired.value == "running")
        asyncio.get_running_loop().create_task(control.shutdown())
        return json_response(
            {
                "success": True,
                "message": "Daemon is stopping",
                "restore_count": restore,
                "pid": os.getpid(),
            }
        )

    routes = [
        Route("/api/processes", list_processes, methods=["GET"]),
        Route("/api/processes", create, methods=["POST"]),
        Route("/api/processes/{id}", get_process, methods=["GET"]),
        Route("/api/processes/{id}", delete, methods=["DELETE"]),
        Route("/api/processes/{id}/start", start, methods=["POST"]),
        Route("/api/processes/{id}/stop", stop, methods=["POST"]),
        Route("/api/processes/{id}/restart", restart, methods=["POST"]),
        Route("/api/processes/{id}/signal", send_signal, methods=["POST"]),
        Route("/api/processes/{id}/logs", logs, methods=["GET"]),
        Route("/api/logs", logs, methods=["GET"]),
        Route("/daemon", daemon_status, methods=["GET"]),
        Route("/daemon/kill", daemon_kill, methods=["POST"]),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={
            PmdError: pmd_error,
            HTTPException: http_error,
            Exception: internal_error,
        },
    )


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidInput(f"invalid {name} {raw[:32]!r}: expected an integer from {low} to {high}")
    return int(raw)


async def _follow(files: list[tuple[ManagedProcess, str, Any]], lines: int) -> AsyncIterator[bytes]:
    queue: asyncio.Queue[bytes] = asyncio.Queue(1024)

    def entry(proc: ManagedProcess, kind: str, line: str) -> bytes:
        return (
            msgspec.json.encode(
                {
                    "timestamp": None,
                    "type": kind,
                    "name": proc.spec.name,
                    "id": proc.id,
                    "message": line,
                }
            )
            + b"\n"
        )

    offsets = []
    for proc, kind, path in files:
        recent, offset = logfiles.tail_at(path, lines)
        offsets.append(offset)
        for line in recent:
            yield entry(proc, kind, line)

    async def pump(proc: ManagedProcess, kind: str, path: Any, offset: int) -> None:
        async for line in logfiles.follow(path, offset):
            await queue.put(entry(proc, kind, line))

    tasks = [
        asyncio.create_task(pump(p, k, path, off))
        for (p, k, path), off in zip(files, offsets, strict=True)
    ]
    try:
        while True:
            yield await queue.get()
    finally:
        for task in tasks:
            task.cancel()
