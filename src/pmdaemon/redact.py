"""What leaves the daemon over TCP of a command line or a URL: secrets travel in
arguments and query strings, so those are replaced by a placeholder."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

HIDDEN = "<hidden>"


def hide_arguments(command: str | None) -> str | None:
    """A command line shown without its arguments (which can carry secrets)."""
    if command is None or not command.strip():
        return command
    program, _, rest = command.strip().partition(" ")
    return f"{program} {HIDDEN}" if rest.strip() else program


def hide_query(url: str | None) -> str | None:
    """A URL shown without credentials or query (where tokens travel)."""
    if url is None:
        return None
    parts = urlsplit(url)
    # host and port as written, without credentials: never parsed as a number, as the
    # port can be a placeholder ($PORT) filled in per run
    netloc = parts.netloc.rpartition("@")[2]
    shown = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return shown + (f"?{HIDDEN}" if parts.query else "")
