"""The TCP listener of the web API: one uvicorn server per `pmdaemon web`, living in the
daemon's event loop beside the control socket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Generator
from typing import Any

import msgspec
import uvicorn

from pmdaemon.api.app import build_web_app
from pmdaemon.api.audit import AuditLog
from pmdaemon.api.auth import KeySet, WebOptions
from pmdaemon.api.openapi import openapi_document
from pmdaemon.errors import InvalidInput, OperationFailed, PortConflict
from pmdaemon.netaddr import is_loopback
from pmdaemon.supervisor import Supervisor
from pmdaemon.system import SystemSampler

log = logging.getLogger("pmdaemon.web")
SEND_BUFFER = 128 * 1024


class WebConfig(msgspec.Struct, forbid_unknown_fields=True):
    """What `pmdaemon web` asks the daemon to serve (keys already resolved by the CLI)."""

    host: str = "127.0.0.1"
    port: int = 9615
    api_keys: list[str] = []
    read_only_api_keys: list[str] = []
    tls_cert: str | None = None
    tls_key: str | None = None
    cors_origins: list[str] = []
    ws_auth: bool = False
    insecure_no_auth: bool = False
    verbose: bool = False
    rate_limit: int = 100  # requests a minute per client address (PMDaemon's); 0: none


def check_config(config: WebConfig) -> None:
    """The rules of SPEC §11.1, also enforced here so no client can bypass them."""
    for key in [*config.api_keys, *config.read_only_api_keys]:
        if not key or any(c.isspace() for c in key):
            raise InvalidInput("an API key must be non-empty and contain no whitespace")
    if not 0 <= config.port <= 65535:
        raise InvalidInput(f"invalid port {config.port}: expected 0 to 65535")
    if config.read_only_api_keys and not config.api_keys:
        raise InvalidInput("read-only API keys need a full API key too (--api-key)")
    if not config.api_keys and not is_loopback(config.host) and not config.insecure_no_auth:
        raise InvalidInput(
            f"refusing to serve the API without an API key on {config.host}, which is not "
            "loopback: set --api-key (or PMDAEMON_API_KEY), or pass --insecure-no-auth"
        )
    if bool(config.tls_cert) != bool(config.tls_key):
        raise InvalidInput("--tls-cert and --tls-key go together")
    if not 0 <= config.rate_limit <= 1_000_000:
        raise InvalidInput(
            f"invalid rate limit {config.rate_limit}: expected 0 (no limit) to 1000000 "
            "requests a minute"
        )


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server living inside the daemon's loop: the daemon owns the signals, and
    there is no need to wake ten times a second to look for an exit request (uvicorn's
    tick, which was most of an idle daemon's CPU): main_loop waits for the exit request."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the daemon owns SIGTERM/SIGINT and shuts servers down itself

    @property
    def should_exit(self) -> bool:
        return self._exit_requested.is_set()

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        if not hasattr(self, "_exit_requested"):
            self._exit_requested = asyncio.Event()
        if value:
            self._exit_requested.set()
        else:
            self._exit_requested.clear()

    async def main_loop(self) -> None:
        await self._exit_requested.wait()


class WebServer:
    def __init__(
        self,
        supervisor: Supervisor,
        system: SystemSampler,
        config: WebConfig,
        access_sink: Callable[[str], None] | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        check_config(config)
        self.config = config
        self.options = WebOptions(
            keys=KeySet(config.api_keys, config.read_only_api_keys),
            ws_auth=config.ws_auth,
            tls=bool(config.tls_cert),
            cors_origins=list(config.cors_origins),
            verbose=config.verbose,
            access_sink=access_sink,
            audit=audit,
            rate_limit=config.rate_limit,
        )
        self.app = build_web_app(supervisor, system, self.options, openapi_document())
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    def _bind(self) -> socket.socket:
        host, port = self.config.host, self.config.port
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except socket.gaierror as exc:
            raise InvalidInput(f"invalid host {host[:64]!r}: {exc.strerror}") from None
        family, _, _, _, address = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit this: a client that stops reading can hold at most this
        # much kernel memory, and its WebSocket sends stall soon enough to be dropped.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        try:
            sock.bind(address)
        except OSError as exc:
            sock.close()
            if exc.errno == 98:
                raise PortConflict(
                    f"port {port} on {host} is already in use", {"port": port}
                ) from None
            raise OperationFailed(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        sock.listen(2048)
        sock.set_inheritable(False)
        return sock

    async def start(self) -> str:
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            # The client address is the peer's: a local client could otherwise pick any
            # address in X-Forwarded-For and dodge the per-client limits.
            proxy_headers=False,
            log_level="warning",
            access_log=False,
            http="httptools",
            ws="websockets-sansio",
            ws_max_size=64 * 1024,
            ws_ping_interval=20.0,
            ws_ping_timeout=20.0,
            timeout_graceful_shutdown=2,
            ssl_certfile=self.config.tls_cert,
            ssl_keyfile=self.config.tls_key,
            server_header=False,
            date_header=False,
            limit_concurrency=4096,
        )
        try:
            config.load()
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"cannot load the TLS certificate or key: {exc}") from None
        sock = self._bind()
        self._server = EmbeddedServer(config)
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[sock]))
        while not self._server.started and not self._task.done():
            await asyncio.sleep(0.005)
        if self._task.done():
            self._task.result()
            raise OperationFailed("the web server stopped during start-up")
        host, port = sock.getsockname()[:2]
        scheme = "https" if self.config.tls_cert else "http"
        shown = f"[{host}]" if ":" in host else host
        self.url = f"{scheme}://{shown}:{port}"
        log.info("web API on %s (%s)", self.url, self.describe_auth())
        return self.url

    def describe_auth(self) -> str:
        c = self.config
        if not c.api_keys:
            return "no API key: anyone who can reach it has full access"
        return f"{len(c.api_keys)} API key(s), {len(c.read_only_api_keys)} read-only" + (
            ", WebSocket needs a key" if c.ws_auth else ""
        )

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, 5)
        log.info("web API on %s stopped", self.url)

    def info(self) -> dict[str, Any]:
        return {"url": self.url, "auth": self.describe_auth()}
