"""Routes over the Supervisor, in two apps. The control app (Unix socket, owner only) also
carries what must never cross TCP: creating processes, captured environments, signals and
daemon control. The web app (TCP, behind API keys) carries SPEC §11.3. Both speak the same
JSON shapes, so the CLI and remote clients see one API."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute

from pmdaemon import __version__, logfiles
from pmdaemon.api import metrics, ui
from pmdaemon.api.auth import Access, AuthMiddleware, SecurityHeadersMiddleware, WebOptions
from pmdaemon.api.errors import http_error, internal_error, json_response, pmd_error
from pmdaemon.api.ratelimit import RateLimitMiddleware
from pmdaemon.errors import InvalidInput, PmdError
from pmdaemon.managed import HealthState, ManagedProcess
from pmdaemon.model import ProcessState
from pmdaemon.redact import HIDDEN, hide_arguments, hide_command_in, hide_query
from pmdaemon.specs import check_instance_ports, inert_warnings, port_value
from pmdaemon.supervisor import Supervisor
from pmdaemon.system import SystemSampler
from pmdaemon.units import format_timestamp, shown

MAX_BODY = 1024 * 1024
# The control socket carries captured environments, which can be large (the kernel allows
# up to 2 MiB of arguments and environment for one exec).
CONTROL_MAX_BODY = 8 * 1024 * 1024
MAX_LOG_LINES = 10_000
EXCEPTION_HANDLERS: dict[Any, Any] = {
    PmdError: pmd_error,
    HTTPException: http_error,
    Exception: internal_error,
}


@dataclass
class DaemonControl:
    """What the daemon itself offers the control routes."""

    system: SystemSampler
    status: Callable[[], dict[str, Any]]
    shutdown: Callable[[], Coroutine[Any, Any, None]]
    serve_web: Callable[[Request], Coroutine[Any, Any, Response]] | None = None


async def read_json(
    request: Request, *, required: bool = False, limit: int = MAX_BODY
) -> dict[str, Any]:
    body = b""
    declared = request.headers.get("content-length", "")
    too_large = f"request body larger than {limit // 1024} KiB"
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, too_large)
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, too_large)
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


def only_fields(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        accepted = ", ".join(sorted(allowed)) or "no fields"
        raise InvalidInput(
            f"unknown field {unknown[0][:40]!r} in the body: accepted {accepted}",
            {"field": unknown[0][:40]},
        )


def _str_map(value: Any, field: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidInput(f"invalid {field}: expected an object of strings")
    return value


def redact(view: dict[str, Any]) -> dict[str, Any]:
    """What the TCP API shows of a process's command line: the program, never its
    arguments, and health check URLs without their query. The owner sees everything
    through the Unix socket (`pmdaemon info`)."""
    config = view["config"]
    script = config["script"]
    config["script"] = hide_arguments(script)
    config["args"] = [HIDDEN for _ in config["args"]]
    config["interpreter_args"] = [HIDDEN for _ in config.get("interpreter_args", ())]
    view["last_error"] = hide_command_in(view.get("last_error"), script)
    view["last_restart_reason"] = hide_command_in(view.get("last_restart_reason"), script)
    check = config.get("health_check")
    if check is not None:
        check["url"] = hide_query(check.get("url"))
        check["script"] = hide_arguments(check.get("script"))
    shown_check = view.get("health_check")
    if shown_check is not None:
        shown_check["url"] = hide_query(shown_check["url"])
        shown_check["script"] = hide_arguments(shown_check["script"])
    return view


def detail(proc: ManagedProcess, *, control: bool = True) -> dict[str, Any]:
    """One process with its configuration. Environment values can hold secrets: only the
    variable names leave the daemon, on either socket; over TCP the command line's
    arguments are hidden too."""
    view = proc.view()
    spec = msgspec.structs.asdict(proc.spec)
    spec["env"] = dict.fromkeys(sorted(spec["env"]), HIDDEN)
    if proc.spec.health_check is not None:
        spec["health_check"] = msgspec.structs.asdict(proc.spec.health_check)
    view["config"] = spec
    view["configured_port"] = proc.assigned_port
    view["desired_state"] = proc.desired.value
    view["last_error"] = proc.last_error
    view["exit_signal"] = proc.exit_signal
    check = proc.spec.health_check
    view["health_check"] = (
        None
        if check is None
        else (
            proc.health if proc.health is not None and proc.pid is not None else HealthState()
        ).view(check)
    )
    view["ready"] = proc.ready()
    view["logs"] = {
        "out_file": str(proc.out_log),
        "error_file": str(proc.error_log),
        "log_file": str(proc.combined_log) if proc.combined_log else None,
    }
    view["pid_file"] = str(proc.pid_file) if proc.pid_file else None
    view["next_cron_restart"] = (
        format_timestamp(proc.next_cron_at) if proc.next_cron_at is not None else None
    )
    view["watch_problem"] = proc.watch_problem
    view["restart_history"] = [msgspec.structs.asdict(r) for r in proc.history]
    return view if control else redact(view)


def instance_count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1024:
        raise InvalidInput(
            f"invalid instances {shown(value)}: expected an integer from 1 to 1024",
            {"field": "instances"},
        )
    return value


def action_result(message: str, procs: list[ManagedProcess]) -> Response:
    return json_response(
        {"success": True, "message": message, "processes": [p.view() for p in procs]}
    )


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise InvalidInput(
            f"invalid {name} {raw[:32]!r}: expected an integer from {low} to {high}",
            {"field": name},
        )
    return int(raw)


def process_routes(sup: Supervisor, *, control: bool) -> list[BaseRoute]:
    """The routes of SPEC §11.3 over processes; ``control`` adds the Unix-socket-only ones."""

    async def list_processes(request: Request) -> Response:
        sup.refresh()
        procs = sup.sorted()
        status = request.query_params.get("status")
        if status is not None:
            if status not in ProcessState.__members__.values():
                raise InvalidInput(
                    f"invalid status {status[:32]!r}: expected one of "
                    + ", ".join(s.value for s in ProcessState),
                    {"field": "status"},
                )
            procs = [p for p in procs if p.state == status]
        for key in ("name", "namespace"):
            value = request.query_params.get(key)
            if value is not None:
                procs = [p for p in procs if getattr(p.spec, key) == value]
        return json_response([p.view() for p in procs])

    async def get_process(request: Request) -> Response:
        procs = sup.resolve(request.path_params["id"])
        sup.refresh()
        if len(procs) == 1:
            return json_response(detail(procs[0], control=control))
        return json_response([detail(p, control=control) for p in procs])

    async def start(request: Request) -> Response:
        procs = await sup.start(request.path_params["id"])
        return action_result("Process started successfully", procs)

    async def stop(request: Request) -> Response:
        procs = await sup.stop(request.path_params["id"])
        return action_result("Process stopped successfully", procs)

    def port_of(body: dict[str, Any]) -> int | str | None:
        value = body.get("port")
        return None if value is None else port_value("port", value)

    limit = CONTROL_MAX_BODY if control else MAX_BODY

    async def restart(request: Request) -> Response:
        body = await read_json(request, limit=limit)
        only_fields(body, {"port", "env", "instances"} if control else {"port", "instances"})
        env = _str_map(body["env"], "env") if "env" in body else None
        port = port_of(body)
        ident = request.path_params["id"]
        if "instances" in body:  # PMDaemon's features/web-api.md: restart at a new count
            count = instance_count(body["instances"])
            procs = sup.resolve(ident)
            if procs[0].group is None and count > 1:
                raise InvalidInput(
                    f"cannot restart {ident!r} as {count} instances: it was started as one "
                    "process; delete it and start it again with instances",
                    {"field": "instances"},
                )
            if not control and count > len(procs):  # processes are never made over TCP
                raise InvalidInput(
                    f"invalid instances {count}: over the network an app is restarted at most "
                    f"at its current {len(procs)} instance(s); grow it with `pmdaemon scale` "
                    "on the machine",
                    {"field": "instances"},
                )
            if port is not None:  # checked before anything changes
                check_instance_ports(count, port)
            if procs[0].group is not None and count != len(procs):
                await sup.scale(ident, count)
        procs = await sup.restart(ident, env, port)
        return action_result("Process restarted successfully", procs)

    async def health(request: Request) -> Response:
        procs = sup.resolve(request.path_params["id"])
        shown = [
            {
                "process": p.spec.name,
                "id": p.id,
                "health": detail(p, control=control)["health_check"],
            }
            for p in procs
        ]
        return json_response(shown[0] if len(shown) == 1 else shown)

    async def reload(request: Request) -> Response:
        body = await read_json(request)
        only_fields(body, {"port"})
        procs = await sup.reload(request.path_params["id"], port_of(body))
        return action_result("Process reloaded successfully", procs)

    async def delete(request: Request) -> Response:
        procs = await sup.delete(request.path_params["id"])
        return json_response(
            {
                "success": True,
                "message": "Process deleted successfully",
                "processes": [p.view() for p in procs],
            }
        )

    async def logs(request: Request) -> Response:
        ident = request.path_params.get("id") or request.query_params.get("id") or "all"
        procs = sup.resolve(ident)
        lines = _int_param(request, "lines", 20, 0, MAX_LOG_LINES)
        kind = request.query_params.get("type", "all")
        kind = {"stdout": "out", "stderr": "error", "err": "error"}.get(kind, kind)
        if kind not in ("out", "error", "all"):
            raise InvalidInput(
                f"invalid type {kind[:32]!r}: expected out, error or all (or stdout, stderr)",
                {"field": "type"},
            )
        files = [item for p in procs for item in _log_files(p, kind)]
        if control and request.query_params.get("follow") in ("1", "true"):
            return StreamingResponse(
                _follow(sup, ident, kind, files, lines), media_type="application/x-ndjson"
            )
        # Reading files can be slow (a huge log, a slow disk): never on the event loop.
        tails = await asyncio.to_thread(
            lambda: [logfiles.tail(path, lines) for _, _, path in files]
        )
        entries = [
            p.log_entry(t, line)
            for (p, t, _), tail in zip(files, tails, strict=True)
            for line in tail
        ]
        answer: dict[str, Any] = {"logs": entries, "total_lines": len(entries)}
        if len(procs) == 1:
            answer["process"] = procs[0].spec.name
        return json_response(answer)

    routes: list[BaseRoute] = [
        Route("/api/processes", list_processes, methods=["GET"]),
        Route("/api/processes/{id}", get_process, methods=["GET"]),
        Route("/api/processes/{id}", delete, methods=["DELETE"]),
        Route("/api/processes/{id}/start", start, methods=["POST"]),
        Route("/api/processes/{id}/stop", stop, methods=["POST"]),
        Route("/api/processes/{id}/restart", restart, methods=["POST"]),
        Route("/api/processes/{id}/reload", reload, methods=["POST"]),
        Route("/api/processes/{id}/logs", logs, methods=["GET"]),
        Route("/api/processes/{id}/health", health, methods=["GET"]),
        Route("/api/logs/{id}", logs, methods=["GET"]),
    ]
    if not control:
        return routes

    def file_body(body: dict[str, Any]) -> tuple[dict[str, str], str, str | None]:
        env = _str_map(body.get("env", {}), "env")
        cwd = body.get("cwd", "/")
        if not isinstance(cwd, str) or not os.path.isabs(cwd):
            raise InvalidInput("invalid cwd: expected an absolute path")
        source = body.get("source")
        if source is not None and (not isinstance(source, str) or not os.path.isabs(source)):
            raise InvalidInput("invalid source: expected the absolute path of the file")
        return env, cwd, source

    def app_objects(body: dict[str, Any]) -> list[Mapping[str, Any]]:
        apps = body.get("apps")
        if not isinstance(apps, list) or not apps or not all(isinstance(a, dict) for a in apps):
            raise InvalidInput("invalid apps: expected a non-empty list of app objects")
        return apps

    async def apply(request: Request) -> Response:
        body = await read_json(request, required=True, limit=CONTROL_MAX_BODY)
        only_fields(body, {"apps", "env", "cwd", "source", "prune", "dry_run"})
        env, cwd, source = file_body(body)
        apps = app_objects(body)
        flags = {k: body.get(k, False) for k in ("prune", "dry_run")}
        if not all(isinstance(v, bool) for v in flags.values()):
            raise InvalidInput("invalid prune or dry_run: expected true or false")
        if flags["dry_run"]:
            plan = sup.plan_apply(apps, cwd, source=source, prune=flags["prune"])
            procs: list[ManagedProcess] = []
            failures: list[tuple[str, str]] = []
        else:
            plan, procs, failures = await sup.apply(
                apps, env, cwd, source=source, prune=flags["prune"]
            )
        return json_response(
            {
                "success": not failures,
                "dry_run": flags["dry_run"],
                "plan": plan,
                "processes": [p.view() for p in procs],
                "warnings": sorted({w for app in apps for w in inert_warnings(app)}),
                "errors": [{"name": n, "message": m} for n, m in failures],
            }
        )

    async def create(request: Request) -> Response:
        body = await read_json(request, required=True, limit=CONTROL_MAX_BODY)
        only_fields(body, {"config", "apps", "env", "cwd", "source"})
        env, cwd, source = file_body(body)
        if "apps" in body:
            apps = app_objects(body)
            procs, failures, existing = await sup.create_many(apps, env, cwd, source)
            warnings = sorted({w for app in apps for w in inert_warnings(app)})
            if existing:
                warnings.append(
                    f"{', '.join(existing)} existed already and kept their configuration "
                    "(pmdaemon apply FILE makes them what the file says)"
                )
            return json_response(
                {
                    "success": not failures,
                    "message": f"{len(apps) - len(failures)} of {len(apps)} apps started",
                    "processes": [p.view() for p in procs],
                    "warnings": warnings,
                    "errors": [{"name": n, "message": m} for n, m in failures],
                },
                201,
            )
        config = body.get("config")
        if not isinstance(config, dict):
            raise InvalidInput("invalid body: expected {'config': {...}} or {'apps': [...]}")
        procs = await sup.create(config, env, cwd)
        return json_response(
            {
                "success": True,
                "message": "Process started successfully",
                "processes": [p.view() for p in procs],
                "warnings": inert_warnings(config),
            },
            201,
        )

    async def flush(request: Request) -> Response:
        procs = sup.resolve(request.path_params["id"])
        paths = sorted({path for p in procs for path in (p.out_log, p.error_log)})
        count = sup.logs.flush(paths)  # through the keeper, between two of its writes
        return action_result(f"Flushed {count} log file(s)", procs)

    async def scale(request: Request) -> Response:
        body = await read_json(request, required=True)
        only_fields(body, {"instances"})
        procs = await sup.scale(request.path_params["id"], instance_count(body.get("instances")))
        return action_result(f"Scaled to {len(procs)} instance(s)", procs)

    async def send_signal(request: Request) -> Response:
        body = await read_json(request, required=True)
        name = body.get("signal")
        if not isinstance(name, str | int) or isinstance(name, bool):
            raise InvalidInput("invalid signal: expected a name such as SIGUSR1, or a number")
        procs = sup.signal(request.path_params["id"], str(name))
        return action_result(f"Signal {str(name).upper()} sent", procs)

    async def reset(request: Request) -> Response:
        procs = sup.reset(request.path_params["id"])
        return action_result("Restart counters reset", procs)

    async def environment(request: Request) -> Response:
        # The values, which nothing else shows: the control socket is the owner's alone.
        procs = sup.resolve(request.path_params["id"])
        shown = [{"id": p.id, "name": p.spec.name, "env": p.run_environment()} for p in procs]
        return json_response(shown[0] if len(shown) == 1 else shown)

    return [
        *routes,
        Route("/api/processes", create, methods=["POST"]),
        Route("/api/apply", apply, methods=["POST"]),
        Route("/api/processes/{id}/reset", reset, methods=["POST"]),
        Route("/api/processes/{id}/env", environment, methods=["GET"]),
        Route("/api/processes/{id}/signal", send_signal, methods=["POST"]),
        Route("/api/processes/{id}/scale", scale, methods=["POST"]),
        Route("/api/processes/{id}/flush", flush, methods=["POST"]),
        Route("/api/logs", logs, methods=["GET"]),
    ]


def build_control_app(supervisor: Supervisor, control: DaemonControl) -> Starlette:
    sup = supervisor

    async def daemon_status(request: Request) -> Response:
        return json_response(control.status())

    async def system_view(request: Request) -> Response:
        return json_response(control.system.view(sup.counts()))

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

    async def save_dump(request: Request) -> Response:
        path = sup.home.dump_file
        count = await asyncio.to_thread(sup.save_dump, path)
        return json_response(
            {"success": True, "message": f"Saved {count} process(es) to {path}", "path": str(path)}
        )

    async def resurrect(request: Request) -> Response:
        procs, present = await sup.resurrect(sup.home.dump_file)
        message = f"Restored {len(procs)} process(es)"
        if present:
            message += f"; {len(present)} already present: {', '.join(present[:20])}"
        return json_response(
            {
                "success": True,
                "message": message,
                "processes": [p.view() for p in procs],
                "present": present,
            }
        )

    routes = [
        *process_routes(sup, control=True),
        Route("/api/system", system_view, methods=["GET"]),
        Route("/daemon", daemon_status, methods=["GET"]),
        Route("/daemon/kill", daemon_kill, methods=["POST"]),
        Route("/daemon/save", save_dump, methods=["POST"]),
        Route("/daemon/resurrect", resurrect, methods=["POST"]),
    ]
    if control.serve_web is not None:
        routes.append(Route("/daemon/web", control.serve_web, methods=["POST"]))
    return starlette_app(routes)


def starlette_app(routes: list[BaseRoute]) -> Starlette:
    app = Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS)
    # `/api/processes/` must be a 404, not a redirect that clients mistake for success.
    app.router.redirect_slashes = False
    return app


def build_web_app(
    supervisor: Supervisor, system: SystemSampler, options: WebOptions, openapi: dict[str, Any]
) -> Any:
    """The TCP API of SPEC §11, wrapped in authentication and security headers."""
    from pmdaemon.api.ws import websocket_endpoint

    sup = supervisor

    async def root(request: Request) -> Response:
        if ui.wants_html(request):
            return RedirectResponse("/ui/", 302)
        return json_response(
            {
                "name": "PMDaemon",
                "version": __version__,
                "description": "A process manager that keeps apps in any language running",
                "status": "running",
                "endpoints": {
                    "processes": "/api/processes",
                    "system": "/api/system",
                    "status": "/api/status",
                    "websocket": "/ws",
                },
            }
        )

    async def status(request: Request) -> Response:
        access = request.scope.get("pmd.access", Access.NONE)
        return json_response(
            {
                "status": "ok",
                "timestamp": format_timestamp(time.time()),
                "version": __version__,
                "access": {Access.FULL: "full", Access.READ: "read"}.get(access, "none"),
            }
        )

    async def system_view(request: Request) -> Response:
        return json_response(system.view(sup.counts()))

    async def openapi_doc(request: Request) -> Response:
        return json_response(openapi)

    async def prometheus(request: Request) -> Response:
        return Response(metrics.render(sup, system), media_type=metrics.CONTENT_TYPE)

    async def ws(websocket: Any) -> None:
        await websocket_endpoint(websocket, sup, system, options)

    routes: list[BaseRoute] = [
        Route("/", root, methods=["GET"]),
        Route("/api/status", status, methods=["GET"]),
        Route("/api/system", system_view, methods=["GET"]),
        Route("/api/openapi.json", openapi_doc, methods=["GET"]),
        Route("/metrics", prometheus, methods=["GET"]),
        *ui.routes(),
        *process_routes(sup, control=False),
        WebSocketRoute("/ws", ws),
    ]
    middleware = []
    if options.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=options.cors_origins,
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=["Authorization", "X-API-Key", "Content-Type"],
                max_age=600,
            )
        )
    app = starlette_app(routes)
    # Outermost first: headers on every answer, the rate limit, CORS (preflights need no
    # key), then auth.
    inner: Any = AuthMiddleware(app, options)
    for item in reversed(middleware):
        inner = item.cls(inner, *item.args, **item.kwargs)
    if options.rate_limit:
        inner = RateLimitMiddleware(inner, options.rate_limit)
    return SecurityHeadersMiddleware(inner, options)


def _log_files(proc: ManagedProcess, kind: str) -> list[tuple[ManagedProcess, str, Path]]:
    return [
        (proc, t, path)
        for t, path in (("out", proc.out_log), ("error", proc.error_log))
        if kind in ("all", t)
    ]


async def _follow(
    sup: Supervisor,
    ident: str,
    kind: str,
    files: list[tuple[ManagedProcess, str, Path]],
    lines: int,
) -> AsyncIterator[bytes]:
    """The last lines, then every new line as it is written, across restarts, and of
    processes that appear later under the same name, group or `all`."""
    queue: asyncio.Queue[bytes] = asyncio.Queue(1024)
    events = sup.bus.subscribe(4096)

    def entry(proc: ManagedProcess, stream: str, line: str) -> bytes:
        return msgspec.json.encode(proc.log_entry(stream, line)) + b"\n"

    tails = await asyncio.to_thread(lambda: [logfiles.tail_at(path, lines) for *_, path in files])
    for (proc, stream, _), (recent, _) in zip(files, tails, strict=True):
        for line in recent:
            yield entry(proc, stream, line)

    async def pump(proc: ManagedProcess, stream: str, path: Path, offset: int | None) -> None:
        async for line in logfiles.follow(path, offset):
            await queue.put(entry(proc, stream, line))

    followed: dict[tuple[int, str], asyncio.Task[None]] = {}

    def add(proc: ManagedProcess, stream: str, path: Path, offset: int | None) -> None:
        if (proc.id, stream) not in followed:
            followed[(proc.id, stream)] = asyncio.create_task(pump(proc, stream, path, offset))

    for (proc, stream, path), (_, offset) in zip(files, tails, strict=True):
        add(proc, stream, path, offset)

    async def watch_new() -> None:
        # A process that starts under this identifier is followed from its first line: from
        # where its log files ended when it was spawned.
        while (event := await events.get()) is not None:
            if event.type != "process_status" or event.data["status"] != "starting":
                continue
            proc = sup.processes.get(event.data["id"])
            if proc is not None and ident in ("all", proc.spec.name, proc.group):
                for p, stream, path in _log_files(proc, kind):
                    add(p, stream, path, p.log_starts.get(stream))

    watcher = asyncio.create_task(watch_new())
    try:
        while True:
            yield await queue.get()
    finally:
        events.close()
        watcher.cancel()
        for task in followed.values():
            task.cancel()
