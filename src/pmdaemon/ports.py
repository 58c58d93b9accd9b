"""Port specs as every surface writes them: ``3000``, ``"3000-3003"``, ``"auto:5000-5100"``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from pmdaemon.errors import InvalidInput
from pmdaemon.units import shown

PORT_FORMS = (
    'a port from 1 to 65535 (3000), a range ("3000-3003") or an automatic range ("auto:5000-5100")'
)
_RANGE = re.compile(r"(auto:)?0*(\d{1,5})-0*(\d{1,5})")


class PortKind(StrEnum):
    SINGLE = "single"
    RANGE = "range"
    AUTO = "auto"


@dataclass(frozen=True, slots=True)
class PortSpec:
    kind: PortKind
    first: int
    last: int

    def __str__(self) -> str:
        if self.kind == PortKind.SINGLE:
            return str(self.first)
        prefix = "auto:" if self.kind == PortKind.AUTO else ""
        return f"{prefix}{self.first}-{self.last}"


def parse_port_spec(value: object, field: str = "port") -> PortSpec:
    """Parse a port spec; raise InvalidInput naming ``field``, the value and the forms."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**31:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return PortSpec(PortKind.SINGLE, _port(value, value, field), value)
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text.lstrip("0")) <= 5:
            port = _port(int(text), value, field)
            return PortSpec(PortKind.SINGLE, port, port)
        match = _RANGE.fullmatch(text)
        if match is not None:
            first = _port(int(match.group(2)), value, field)
            last = _port(int(match.group(3)), value, field)
            if first > last:
                raise _bad(field, value, "a range whose first port is not above its last")
            kind = PortKind.AUTO if match.group(1) else PortKind.RANGE
            return PortSpec(kind, first, last)
    raise _bad(field, value, PORT_FORMS)


def _port(port: int, value: object, field: str) -> int:
    if not 1 <= port <= 65535:
        raise _bad(field, value, PORT_FORMS)
    return port


def _bad(field: str, value: object, forms: str) -> InvalidInput:
    return InvalidInput(f"invalid {field} {shown(value)}: expected {forms}", {"field": field})
