"""The OpenAPI document of the web API, served at /api/openapi.json and committed as
docs/openapi.json (`python -m pmdaemon.api.openapi > docs/openapi.json`)."""

from __future__ import annotations

import json
from typing import Any

from pmdaemon import __version__
from pmdaemon.specs import PORT_SCHEMA

STATES = ["starting", "online", "stopping", "stopped", "restarting", "errored"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


NULLABLE_INT = {"type": ["integer", "null"]}
NULLABLE_STR = {"type": ["string", "null"]}

SCHEMAS: dict[str, Any] = {
    "Process": {
        "type": "object",
        "required": [
            "id",
            "name",
            "namespace",
            "status",
            "pid",
            "port",
            "instance",
            "cpu_usage",
            "memory_usage",
            "uptime",
            "uptime_seconds",
            "restarts",
            "health_status",
            "exit_code",
            "last_restart_reason",
            "created_at",
            "started_at",
        ],
        "properties": {
            "id": {"type": "integer", "minimum": 0},
            "name": {"type": "string"},
            "namespace": {"type": "string"},
            "status": {"type": "string", "enum": STATES},
            "pid": NULLABLE_INT,
            "port": NULLABLE_INT,
            "instance": {"type": "integer"},
            "cpu_usage": {"type": "number", "description": "percent of one core"},
            "memory_usage": {"type": "integer", "description": "bytes of RSS of the tree"},
            "uptime": {"type": "string", "examples": ["2h 15m 30s"]},
            "uptime_seconds": {"type": "integer"},
            "restarts": {"type": "integer"},
            "health_status": {
                "type": ["string", "null"],
                "enum": ["healthy", "unhealthy", "unknown", None],
            },
            "exit_code": NULLABLE_INT,
            "last_restart_reason": NULLABLE_STR,
            "created_at": NULLABLE_STR,
            "started_at": NULLABLE_STR,
        },
    },
    "ProcessDetail": {
        "allOf": [
            _ref("Process"),
            {
                "type": "object",
                "required": ["config", "logs", "restart_history"],
                "properties": {
                    "config": {
                        "type": "object",
                        "description": "the configuration; env maps each variable name to "
                        "<hidden> (values never leave the daemon), and over TCP each argument "
                        "of the command line shows as <hidden>",
                        "properties": {
                            "env": {
                                "type": "object",
                                "additionalProperties": {"const": "<hidden>"},
                            }
                        },
                    },
                    "configured_port": NULLABLE_INT,
                    "desired_state": {"type": "string", "enum": ["running", "stopped"]},
                    "last_error": NULLABLE_STR,
                    "exit_signal": NULLABLE_STR,
                    "health_check": {
                        "type": ["object", "null"],
                        "required": ["enabled", "check_type", "status"],
                        "properties": {
                            "enabled": {"type": "boolean"},
                            "check_type": {"type": "string", "enum": ["http", "script"]},
                            "url": NULLABLE_STR,
                            "script": NULLABLE_STR,
                            "interval": {"type": "number", "description": "seconds"},
                            "timeout": {"type": "number", "description": "seconds"},
                            "retries": {"type": "integer"},
                            "status": {
                                "type": "string",
                                "enum": ["healthy", "unhealthy", "unknown"],
                            },
                            "last_check": NULLABLE_STR,
                            "response_time": {
                                "type": ["integer", "null"],
                                "description": "milliseconds",
                            },
                            "last_error": NULLABLE_STR,
                            "consecutive_failures": {"type": "integer"},
                            "output": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                    "ready": {
                        "type": "boolean",
                        "description": "healthy, or up for min_uptime without a check",
                    },
                    "logs": {
                        "type": "object",
                        "required": ["out_file", "error_file"],
                        "properties": {
                            "out_file": {"type": "string"},
                            "error_file": {"type": "string"},
                            "log_file": {
                                **NULLABLE_STR,
                                "description": "stdout and stderr together (log_file)",
                            },
                        },
                    },
                    "pid_file": NULLABLE_STR,
                    "next_cron_restart": {
                        **NULLABLE_STR,
                        "description": "when cron_restart next fires (ISO 8601, UTC)",
                    },
                    "watch_problem": {
                        **NULLABLE_STR,
                        "description": "why the app's files are not (all) watched",
                    },
                    "restart_history": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "at": {"type": "string"},
                                "reason": {"type": "string"},
                                "pid": NULLABLE_INT,
                            },
                        },
                    },
                },
            },
        ],
    },
    "ActionResult": {
        "type": "object",
        "required": ["success", "message", "processes"],
        "properties": {
            "success": {"const": True},
            "message": {"type": "string", "examples": ["Process restarted successfully"]},
            "processes": {"type": "array", "items": _ref("Process")},
        },
    },
    "PortBody": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "port": {
                "anyOf": [*PORT_SCHEMA["anyOf"], {"type": "null"}],
                "examples": ["3001", 3001],
                "description": "a port or range for this run only; null means the configured one",
            }
        },
    },
    "RestartBody": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "port": {
                "anyOf": [*PORT_SCHEMA["anyOf"], {"type": "null"}],
                "description": "a port or range for this run only; null means the configured one",
            },
            "instances": {
                "type": "integer",
                "minimum": 1,
                "maximum": 1024,
                "description": "a cluster is scaled to this count first (PMDaemon's "
                "features/web-api.md); over TCP it may only shrink",
            },
        },
    },
    "Status": {
        "type": "object",
        "required": ["status", "timestamp", "version", "access"],
        "properties": {
            "status": {"const": "ok"},
            "timestamp": {"type": "string", "format": "date-time"},
            "version": {"type": "string"},
            "access": {"type": "string", "enum": ["full", "read", "none"]},
        },
    },
    "Health": {
        "type": "object",
        "required": ["process", "id", "health"],
        "properties": {
            "process": {"type": "string"},
            "id": {"type": "integer"},
            "health": {
                "type": ["object", "null"],
                "description": "as ProcessDetail's health_check; null without a check",
            },
        },
    },
    "Logs": {
        "type": "object",
        "required": ["logs", "total_lines"],
        "properties": {
            "logs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["timestamp", "type", "message"],
                    "properties": {
                        "timestamp": NULLABLE_STR,
                        "type": {"type": "string", "enum": ["out", "error"]},
                        "message": {"type": "string"},
                        "name": {"type": "string"},
                        "id": {"type": "integer"},
                    },
                },
            },
            "total_lines": {"type": "integer"},
        },
    },
    "System": {
        "type": "object",
        "required": [
            "hostname",
            "platform",
            "arch",
            "uptime",
            "uptime_seconds",
            "timestamp",
            "cpu",
            "load",
            "memory",
            "disk",
            "processes",
        ],
        "properties": {
            "hostname": {"type": "string"},
            "platform": {"type": "string"},
            "arch": {"type": "string"},
            "uptime": {"type": "string", "examples": ["5d 12h"]},
            "uptime_seconds": {"type": "integer"},
            "timestamp": {"type": "string", "format": "date-time"},
            "cpu": {
                "type": "object",
                "required": ["cores", "usage", "load_average"],
                "properties": {
                    "cores": {"type": "integer"},
                    "usage": {"type": "number", "description": "percent of all cores"},
                    "load_average": {
                        "type": "array",
                        "items": {"type": "number"},
                        "minItems": 3,
                        "maxItems": 3,
                    },
                },
            },
            "load": {
                "type": "object",
                "required": ["one", "five", "fifteen"],
                "properties": {k: {"type": "number"} for k in ("one", "five", "fifteen")},
            },
            "memory": {
                "type": "object",
                "required": ["total", "used", "free", "available", "usage_percent"],
                "properties": {
                    k: {"type": "number" if k == "usage_percent" else "integer"}
                    for k in ("total", "used", "free", "available", "usage_percent")
                },
            },
            "disk": {
                "type": "object",
                "required": ["total", "used", "free", "usage_percent"],
                "properties": {
                    k: {"type": ["number" if k == "usage_percent" else "integer", "null"]}
                    for k in ("total", "used", "free", "usage_percent")
                },
            },
            "processes": {
                "type": "object",
                "required": ["total", "online", "stopped", "errored"],
                "additionalProperties": {"type": "integer"},
            },
        },
    },
    "Error": {
        "type": "object",
        "required": ["success", "error", "message", "code"],
        "properties": {
            "success": {"const": False},
            "error": {"type": "string"},
            "message": {"type": "string"},
            "code": {"type": "string", "examples": ["PROCESS_NOT_FOUND"]},
            "details": {"type": "object"},
        },
    },
    "AuthError": {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string", "enum": ["Unauthorized", "Forbidden"]},
            "message": {"type": "string"},
        },
    },
}

ID_PARAM = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "an id, a name or a group name",
}
ERRORS = {
    "401": _json(_ref("AuthError"), "missing or wrong API key"),
    "404": _json(_ref("Error"), "no such process"),
}
RATE_HEADERS = {
    "X-RateLimit-Limit": {"schema": {"type": "integer"}, "description": "requests a minute"},
    "X-RateLimit-Remaining": {"schema": {"type": "integer"}, "description": "left this minute"},
    "X-RateLimit-Reset": {
        "schema": {"type": "integer"},
        "description": "Unix time the minute's count starts again",
    },
}
EVERY_ROUTE = {  # what the middleware can answer on any route
    "429": {
        **_json(
            _ref("Error"),
            "too many requests from this client (web --rate-limit), or too many failed "
            "authentications; Retry-After says when to come back",
        ),
        "headers": {**RATE_HEADERS, "Retry-After": {"schema": {"type": "integer"}}},
    },
    "431": _json(_ref("Error"), "request headers larger than 16 KiB"),
}
MUTATING_ERRORS = {
    **ERRORS,
    "400": _json(_ref("Error"), "bad input"),
    "403": _json(_ref("AuthError"), "read-only key"),
    "409": _json(_ref("Error"), "conflict"),
    "413": _json(_ref("Error"), "body too large"),
    "422": _json(_ref("Error"), "the app could not be started, or a reload stopped"),
    "503": _json(_ref("Error"), "the daemon is stopping"),
}


def _action(summary: str, body: str | None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "parameters": [ID_PARAM],
        "responses": {"200": _json(_ref("ActionResult"), "done"), **MUTATING_ERRORS},
    }
    if body:
        op["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    return {"post": op}


def openapi_document() -> dict[str, Any]:
    document = _document()
    for item in document["paths"].values():
        for op in item.values():
            op["responses"].update(EVERY_ROUTE)
            ok = op["responses"].get("200")
            if ok is not None:
                op["responses"]["200"] = {**ok, "headers": RATE_HEADERS}
    return document


def _document() -> dict[str, Any]:
    logs_op = {
        "get": {
            "summary": "last log lines",
            "parameters": [
                ID_PARAM,
                {
                    "name": "lines",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 0, "maximum": 10000, "default": 20},
                },
                {
                    "name": "type",
                    "in": "query",
                    "schema": {
                        "type": "string",
                        "enum": ["out", "error", "all", "stdout", "stderr"],
                        "default": "all",
                    },
                    "description": "stdout and stderr are PMDaemon's names of out and error",
                },
            ],
            "responses": {
                "200": _json(_ref("Logs"), "log lines"),
                "400": _json(_ref("Error"), "bad parameter"),
                **ERRORS,
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pmdaemon web API",
            "version": __version__,
            "description": "Manage processes over HTTP. When a key is configured, everything "
            "but GET / and the WebSocket /ws needs it: Authorization: Bearer KEY, "
            "Authorization: ApiKey KEY, or X-API-Key: KEY. Processes are created only over "
            "the daemon's owner-only Unix socket.",
        },
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
        "security": [{"bearer": []}, {"apiKeyHeader": []}],
        "paths": {
            "/": {
                "get": {
                    "summary": "service information",
                    "security": [],
                    "responses": {"200": _json({"type": "object"}, "about")},
                }
            },
            "/api/status": {
                "get": {
                    "summary": "health of the daemon, and the access the presented key has",
                    "responses": {"200": _json(_ref("Status"), "ok"), "401": ERRORS["401"]},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics: processes, daemon, machine",
                    "responses": {
                        "200": {
                            "description": "text exposition format 0.0.4",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        "401": ERRORS["401"],
                    },
                }
            },
            "/api/system": {
                "get": {
                    "summary": "the machine",
                    "responses": {"200": _json(_ref("System"), "system"), "401": ERRORS["401"]},
                }
            },
            "/api/processes": {
                "get": {
                    "summary": "every process",
                    "parameters": [
                        {
                            "name": "status",
                            "in": "query",
                            "schema": {"type": "string", "enum": STATES},
                        },
                        {"name": "name", "in": "query", "schema": {"type": "string"}},
                        {"name": "namespace", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": _json({"type": "array", "items": _ref("Process")}, "processes"),
                        "400": _json(_ref("Error"), "bad filter"),
                        "401": ERRORS["401"],
                    },
                }
            },
            "/api/processes/{id}": {
                "get": {
                    "summary": "one process (or every member of a group)",
                    "parameters": [ID_PARAM],
                    "responses": {
                        "200": _json(
                            {
                                "oneOf": [
                                    _ref("ProcessDetail"),
                                    {"type": "array", "items": _ref("ProcessDetail")},
                                ]
                            },
                            "detail",
                        ),
                        **ERRORS,
                    },
                },
                "delete": {
                    "summary": "stop and remove",
                    "parameters": [ID_PARAM],
                    "responses": {"200": _json(_ref("ActionResult"), "deleted"), **MUTATING_ERRORS},
                },
            },
            "/api/processes/{id}/start": _action("start", None),
            "/api/processes/{id}/stop": _action("stop", None),
            "/api/processes/{id}/restart": _action(
                "restart (optionally on another port, or at another instance count)",
                "RestartBody",
            ),
            "/api/processes/{id}/reload": _action("restart one instance at a time", "PortBody"),
            "/api/processes/{id}/logs": logs_op,
            "/api/processes/{id}/health": {
                "get": {
                    "summary": "the health check of a process (or of each member of a group)",
                    "parameters": [ID_PARAM],
                    "responses": {
                        "200": _json(
                            {"oneOf": [_ref("Health"), {"type": "array", "items": _ref("Health")}]},
                            "health",
                        ),
                        **ERRORS,
                    },
                }
            },
            "/api/logs/{id}": logs_op,
            "/ws": {
                "get": {
                    "summary": "the WebSocket stream (upgrade): process_list and system_metrics "
                    "on connect, then process_status, process_metrics, system_metrics, "
                    "health_update, process_event, process_deleted and log_message; clients "
                    "send auth, ping, subscribe, unsubscribe, get_info, get_system and "
                    "command (full-access key only); see docs/web-api.md",
                    "security": [],
                    "responses": {
                        "101": {"description": "switching to the WebSocket protocol"},
                        "401": ERRORS["401"],
                        "404": _json(
                            _ref("Error"), "a plain HTTP request: /ws answers only upgrades"
                        ),
                    },
                }
            },
            "/ui/": {
                "get": {
                    "summary": "the dashboard (static files; the data comes through the API)",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "index.html",
                            "content": {"text/html": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/ui/{file}": {
                "get": {
                    "summary": "a file of the dashboard",
                    "security": [],
                    "parameters": [
                        {
                            "name": "file",
                            "in": "path",
                            "required": True,
                            "schema": {
                                "type": "string",
                                "enum": ["index.html", "app.js", "style.css", "favicon.svg"],
                            },
                        }
                    ],
                    "responses": {
                        "200": {"description": "the file"},
                        "404": _json(_ref("Error"), "no such file"),
                    },
                }
            },
            "/api/openapi.json": {
                "get": {
                    "summary": "this document",
                    "responses": {
                        "200": _json({"type": "object"}, "OpenAPI 3.1"),
                        "401": ERRORS["401"],
                    },
                }
            },
        },
    }


if __name__ == "__main__":
    print(json.dumps(openapi_document(), indent=2))
