"""The dashboard's static files, served from the package at /ui/ (public: they carry no
data) under a Content-Security-Policy that allows nothing but this origin."""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from pmdaemon.api.errors import error_body, json_response

FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def load() -> dict[str, bytes]:
    package = resources.files("pmdaemon.ui")
    return {name: package.joinpath(name).read_bytes() for name in FILES}


def wants_html(request: Request) -> bool:
    """A browser navigating (Accept names text/html before any JSON); API clients and
    curl (*/*) keep getting JSON."""
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept.split("text/html")[0]


def routes() -> list[BaseRoute]:
    files = load()

    async def serve(request: Request) -> Response:
        name = request.path_params.get("file") or "index.html"
        if name not in files:
            return json_response(
                error_body(
                    "Not found",
                    f"no file {name[:64]!r} under /ui/: the dashboard is /ui/ ("
                    + ", ".join(FILES)
                    + ")",
                    "NOT_FOUND",
                    {},
                ),
                404,
            )
        return Response(
            files[name],
            media_type=FILES[name],
            headers={"content-security-policy": CSP, "cache-control": "no-cache"},
        )

    async def to_slash(request: Request) -> Response:
        return RedirectResponse("/ui/", 308)

    return [
        Route("/ui", to_slash, methods=["GET", "HEAD"]),
        Route("/ui/", serve, methods=["GET", "HEAD"]),
        Route("/ui/{file}", serve, methods=["GET", "HEAD"]),
    ]
