"""What leaves the daemon over TCP of a command line or a URL: secrets travel in
arguments and query strings, so those are replaced by a placeholder."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

HIDDEN = "<hidden>"


def hide_arguments(command: str | None) -> str | None:
    """A command line shown without its arguments (which can carry secrets)."""
    if command is None or not command.strip():
        return command
    words = command.split(None, 1)  # any whitespace, as the command is split to run
    return f"{words[0]} {HIDDEN}" if len(words) > 1 else words[0]


def hide_query(url: str | None) -> str | None:
    """A URL shown without credentials or query (where tokens travel)."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed [ of an IPv6 host written with a placeholder
        scheme = url.partition(":")[0] if "://" in url else ""
        return f"{scheme}://{HIDDEN}" if scheme.isalpha() else HIDDEN
    # host and port as written, without credentials: never parsed as a number, as the
    # port can be a placeholder ($PORT) filled in per run
    netloc = parts.netloc.rpartition("@")[2]
    shown = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return shown + (f"?{HIDDEN}" if parts.query else "")


def hide_command_in(text: str | None, command: str) -> str | None:
    """``text`` (a reason, an error) with ``command`` written without its arguments."""
    if not text or not command.strip():
        return text
    shown = hide_arguments(command) or command
    return text.replace(repr(command), repr(shown)).replace(command, shown)
