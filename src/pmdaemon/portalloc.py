"""Ports for processes: which are free on the host (tested by binding), who holds a busy
one, and the assignment of a port spec to N instances (SPEC §6)."""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Collection, Mapping

import psutil

from pmdaemon.errors import InvalidInput, PortConflict
from pmdaemon.ports import PortKind, PortSpec


def free_on_host(port: int) -> bool:
    """True when nothing listens on ``port`` (checked on every IPv4 and IPv6 address)."""
    for family, address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            continue  # no IPv6 here
        with sock:
            # SO_REUSEADDR ignores TIME_WAIT leftovers but not a live listener.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind((address, port))
            except OSError as exc:
                if exc.errno == errno.EADDRNOTAVAIL:
                    continue  # this address family is not configured here
                return False
    return True


def holder(port: int) -> str:
    """Who listens on ``port``, as well as the host tells."""
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
                if conn.pid is None:
                    break
                try:
                    return f"{psutil.Process(conn.pid).name()} (pid {conn.pid})"
                except psutil.Error:
                    return f"pid {conn.pid}"
    except (psutil.Error, OSError):
        pass
    return "another program"


def assign(
    spec: PortSpec,
    count: int,
    managed: Mapping[int, str],
    field: str = "port",
    own: Collection[int] = (),
) -> list[int]:
    """Ports for ``count`` instances under ``spec``. ``managed`` maps ports held by other
    managed processes to their names; ``own`` are ports the processes being changed hold
    themselves (free for them, whatever the host says). Raises before anything is taken."""
    if spec.kind == PortKind.SINGLE:
        if count > 1:
            raise InvalidInput(
                f"invalid {field} {spec}: {count} instances cannot share one port; give a "
                f'range such as "{spec.first}-{spec.first + count - 1}"',
                {"field": field},
            )
        ports = [spec.first]
    elif spec.kind == PortKind.RANGE:
        size = spec.last - spec.first + 1
        if size < count:
            raise InvalidInput(
                f"invalid {field} {spec}: {size} port(s) for {count} instances; give at least "
                f'"{spec.first}-{spec.first + count - 1}"',
                {"field": field},
            )
        ports = [spec.first + i for i in range(count)]
    else:
        ports = []
        for port in range(spec.first, spec.last + 1):
            if len(ports) == count:
                break
            if port not in managed and (port in own or free_on_host(port)):
                ports.append(port)
        if len(ports) < count:
            raise PortConflict(
                f"no {count} free port(s) in {spec}: found {len(ports)} not held by a managed "
                "process or another program",
                {"port": str(spec)},
            )
        return ports
    for port in ports:
        if port in managed:
            raise PortConflict(
                f"port {port} is held by process {managed[port]!r}",
                {"port": port, "holder": managed[port]},
            )
        if port not in own and not free_on_host(port):
            raise PortConflict(
                f"port {port} is in use by {holder(port)}", {"port": port, "holder": holder(port)}
            )
    return ports
