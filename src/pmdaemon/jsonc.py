"""JSON as people write ecosystem files: ``//`` and ``/* */`` comments and trailing commas
are blanked out (keeping every line and column, so errors still point at the right place)
before the strict parser reads the text. Strings are never touched."""

from __future__ import annotations


def strip(text: str) -> str:
    """``text`` with comments and trailing commas replaced by spaces."""
    out = list(text)
    i, n = 0, len(text)
    last_comma = -1  # index of a comma not yet followed by a value
    while i < n:
        c = text[i]
        if c == '"':
            last_comma = -1
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            continue
        if c == "/" and i + 1 < n and text[i + 1] in "/*":
            end = text.find("\n", i) if text[i + 1] == "/" else text.find("*/", i + 2)
            end = n if end < 0 else end + (0 if text[i + 1] == "/" else 2)
            for j in range(i, end):
                if out[j] != "\n":
                    out[j] = " "
            i = end
            continue
        if c == ",":
            last_comma = i
        elif c in "]}":
            if last_comma >= 0:
                out[last_comma] = " "
            last_comma = -1
        elif not c.isspace():
            last_comma = -1
        i += 1
    return "".join(out)
