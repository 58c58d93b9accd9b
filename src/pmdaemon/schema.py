"""The JSON Schema of ecosystem files, generated from the same field table that validates
them (specs.FIELDS). Shipped as pmdaemon/ecosystem.schema.json and committed as
schema/ecosystem.schema.json: `python -m pmdaemon.schema --write` refreshes both."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pmdaemon.config import ALIASES, PROFILE_KEY
from pmdaemon.specs import ENV_SCHEMA, FIELDS

PACKAGED = Path(__file__).with_name("ecosystem.schema.json")


def ecosystem_schema() -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for name, field in FIELDS.items():
        schema = field.schema
        if getattr(field.parse, "nullable", False):
            schema = {"anyOf": [schema, {"type": "null"}]}
        properties[name] = {**schema, "description": field.doc}
    for alias, target in ALIASES.items():
        properties[alias] = {**properties[target], "description": f"PM2 spelling of {target}"}
    app = {
        "type": "object",
        "required": ["script"],
        "properties": properties,
        "patternProperties": {PROFILE_KEY.pattern: ENV_SCHEMA},
        "additionalProperties": False,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://pmdaemon.invalid/ecosystem.schema.json",
        "title": "pmdaemon ecosystem file",
        "description": "Apps to run: JSON, YAML or TOML with a top-level apps list. "
        "env_<profile> blocks are applied with --env-name PROFILE.",
        "type": "object",
        "required": ["apps"],
        "properties": {
            "apps": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/app"}},
            "deploy": {"type": "object", "description": "PM2 deploy settings (not read)"},
        },
        "additionalProperties": False,
        "$defs": {"app": app},
    }


def render() -> str:
    return json.dumps(ecosystem_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    text = render()
    if sys.argv[1:] == ["--write"]:
        PACKAGED.write_text(text)
        (Path.cwd() / "schema" / "ecosystem.schema.json").write_text(text)
    else:
        sys.stdout.write(text)
