"""The one table from exceptions to HTTP statuses and error bodies (SPEC §11.3)."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from pmdaemon import errors

log = logging.getLogger("pmdaemon.api")

STATUS_BY_CODE = {
    errors.ProcessNotFound.code: 404,
    errors.ProcessExists.code: 409,
    errors.InvalidInput.code: 400,
    errors.PortConflict.code: 409,
    errors.SpawnError.code: 422,
    errors.InvalidTransition.code: 409,
    errors.OperationFailed.code: 500,
    errors.ReloadStopped.code: 422,
    errors.DaemonStopping.code: 503,
}

HTTP_LABELS = {
    400: ("Bad request", "BAD_REQUEST"),
    404: ("Not found", "NOT_FOUND"),
    405: ("Method not allowed", "METHOD_NOT_ALLOWED"),
    413: ("Payload too large", "PAYLOAD_TOO_LARGE"),
    415: ("Unsupported media type", "UNSUPPORTED_MEDIA_TYPE"),
    429: ("Too many requests", "TOO_MANY_REQUESTS"),
}


def json_response(body: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(body), status, media_type="application/json")


def error_body(label: str, message: str, code: str, details: dict[str, Any]) -> dict[str, Any]:
    return {"success": False, "error": label, "message": message, "code": code, "details": details}


async def pmd_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.PmdError)
    status = STATUS_BY_CODE.get(exc.code, 500)
    return json_response(error_body(exc.label, exc.message, exc.code, exc.details), status)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    label, code = HTTP_LABELS.get(exc.status_code, ("Error", "HTTP_ERROR"))
    message = exc.detail if isinstance(exc.detail, str) and exc.detail else label
    if exc.status_code == 404 and message == "Not Found":
        path = request.url.path
        if path.startswith(("/api/processes/", "/api/logs/")):
            # An id that is not one path segment (e.g. an encoded '../x') names no process.
            return json_response(
                error_body(
                    errors.ProcessNotFound.label,
                    "no process with that id or name",
                    errors.ProcessNotFound.code,
                    {},
                ),
                404,
            )
        message = f"no route {request.method} {path[:200]}"
    response = json_response(error_body(label, message, code, {}), exc.status_code)
    for name, value in (exc.headers or {}).items():  # e.g. Allow on a 405 (RFC 9110)
        response.headers[name] = value
    return response


async def internal_error(request: Request, exc: Exception) -> Response:
    log.exception("internal error on %s %s", request.method, request.url.path[:200])
    return json_response(
        error_body(
            "Internal error",
            "the daemon failed to handle this request; see daemon.log",
            "INTERNAL_ERROR",
            {},
        ),
        500,
    )
