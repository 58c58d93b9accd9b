"""``${VAR}``, ``${VAR:-default}`` and ``${VAR-default}`` in ecosystem files, replaced from
the environment of the command that reads the file (as PMDaemon's docs and docker compose
do); ``$${`` writes a literal ``${``. A variable that is not set and has no default is left
as written and named in a warning: the health check expands ``$VAR`` and ``${VAR}`` from
the process's own environment when it runs, so its URL and script are not touched here."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# One reference, also the JSON Schema's pattern for a port written as one (checked once
# substituted).
VARIABLE = r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}"
_REFERENCE = re.compile(r"\$\$\{|" + VARIABLE)
# Values expanded by the process itself at run time.
RUNTIME = frozenset(
    {"health_check.url", "health_check.script", "health_check_url", "health_check_script"}
)


def expand(value: Any, environ: Mapping[str, str], where: str, unset: list[str]) -> Any:
    """``value`` with every reference in its strings replaced; the names of unset
    variables that were left as written are added to ``unset``."""
    if where in RUNTIME:
        return value
    if isinstance(value, str):
        return _expand_text(value, environ, unset) if "${" in value else value
    if isinstance(value, Mapping):
        return {
            key: expand(item, environ, f"{where}.{key}" if where else str(key), unset)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [expand(item, environ, where, unset) for item in value]
    return value


def _expand_text(text: str, environ: Mapping[str, str], unset: list[str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name, mode, default = match.group(1), match.group(2), match.group(3)
        value = environ.get(name)
        if mode == ":-" and not value:
            return default or ""
        if mode == "-" and value is None:
            return default or ""
        if value is None:
            if name not in unset:
                unset.append(name)
            return match.group(0)
        return value

    return _REFERENCE.sub(replace, text)
