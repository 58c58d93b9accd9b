"""The JSON Schema of ecosystem files, generated from the same field table that validates
them (specs.FIELDS). Shipped as pmdaemon/ecosystem.schema.json and committed as
schema/ecosystem.schema.json: `python -m pmdaemon.schema --write` refreshes both."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pmdaemon.config import PROFILE_KEY
from pmdaemon.specs import (
    CAMEL_CASE,
    ENV_SCHEMA,
    FIELD_ALIASES,
    FIELDS,
    FLAT_HEALTH,
    INERT_FIELDS,
    LOG_GROUP,
)

PACKAGED = Path(__file__).with_name("ecosystem.schema.json")


def ecosystem_schema() -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for name, field in FIELDS.items():
        schema = field.schema
        if getattr(field.parse, "nullable", False):
            schema = {"anyOf": [schema, {"type": "null"}]}
        properties[name] = {**schema, "description": field.doc}
    for name, (_, schema, note) in INERT_FIELDS.items():
        properties[name] = {
            "anyOf": [schema, {"type": "null"}],
            "description": note or "accepted for PM2's files; it changes nothing here",
        }
    for alias, target in FIELD_ALIASES.items():
        properties[alias] = {**properties[target], "description": f"another name of {target}"}
    for alias, target in CAMEL_CASE.items():
        properties[alias] = {**properties[target], "description": f"PM2's camelCase {target}"}
    properties["log"] = {
        "anyOf": [
            {
                "type": "object",
                "additionalProperties": False,
                "properties": {key: properties[key] for key in LOG_GROUP},
            },
            {key: value for key, value in properties["log_file"].items() if key != "description"},
        ],
        "description": "PMDaemon's group of log settings (each also works on its own), or "
        "PM2's other name of log_file",
    }
    # A field may be written once: under its name, an alias, or in the log group.
    once: list[dict[str, Any]] = [
        {"not": {"required": [alias, target]}} for alias, target in FIELD_ALIASES.items()
    ]
    for alias, target in FIELD_ALIASES.items():
        if target in LOG_GROUP:
            once.append(
                {
                    "not": {
                        "required": [alias, "log"],
                        "properties": {"log": {"type": "object", "required": [target]}},
                    }
                }
            )
    once += [
        {
            "not": {
                "required": [key, "log"],
                "properties": {"log": {"type": "object", "required": [key]}},
            }
        }
        for key in LOG_GROUP
    ]
    once.append(  # PM2's log (a string) is log_file
        {
            "not": {
                "required": ["log_file", "log"],
                "properties": {"log": {"not": {"type": ["object", "null"]}}},
            }
        }
    )
    once += [
        {
            "not": {
                "required": [flat, "health_check"],
                "properties": {"health_check": {"type": "object", "required": [key]}},
            }
        }
        for flat, key in FLAT_HEALTH.items()
    ]
    app = {
        "type": "object",
        "required": ["script"],
        "properties": properties,
        "patternProperties": {PROFILE_KEY.pattern: ENV_SCHEMA},
        "additionalProperties": False,
        "allOf": once,
    }
    app_list = {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/app"}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://pmdaemon.invalid/ecosystem.schema.json",
        "title": "pmdaemon ecosystem file",
        "description": "Apps to run: JSON, YAML or TOML (or the data a PM2 ecosystem.config.js "
        "exports) with a top-level apps list (or a list of apps, or one app). env_<profile> "
        "blocks are applied with --env-name PROFILE; ${VAR} and ${VAR:-default} are taken "
        "from the environment. Other top-level keys are ignored, with a warning.",
        "anyOf": [
            {
                "type": "object",
                "required": ["apps"],
                "properties": {
                    "apps": {"anyOf": [app_list, {"$ref": "#/$defs/app"}]},
                    "deploy": {"type": "object", "description": "PM2 deploy settings (not read)"},
                    "$schema": {"type": "string", "description": "this schema, for editors"},
                },
            },
            {
                "type": "object",
                "required": ["pm2"],
                "not": {"required": ["apps"]},
                "properties": {
                    "pm2": {"anyOf": [app_list, {"$ref": "#/$defs/app"}]},
                    "$schema": {"type": "string", "description": "this schema, for editors"},
                },
            },
            app_list,
            {
                "allOf": [
                    {"not": {"required": ["apps"]}},
                    {"not": {"required": ["pm2"]}},
                    {"$ref": "#/$defs/app"},
                ]
            },
        ],
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
