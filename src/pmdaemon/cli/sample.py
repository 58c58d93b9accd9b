"""`pmdaemon init`: a sample ecosystem file, as PM2's `init` writes one (its default name
ecosystem.config.js), or in JSON, YAML or TOML. The same app in every format; an existing
file is never overwritten without --force. Only the standard library: this runs in the
CLI."""

from __future__ import annotations

import os
from pathlib import Path

from pmdaemon.cli import UsageError
from pmdaemon.errors import OperationFailed

JS = """\
// pmdaemon ecosystem file (PM2's format): `pmdaemon start ecosystem.config.js`,
// `pmdaemon start ecosystem.config.js --env-name production` for env_production.
// Every field: docs/ecosystem.md. `pmdaemon validate ecosystem.config.js` checks it.
module.exports = {
  apps: [
    {
      name: "app",
      script: "app.js",
      instances: 1,
      autorestart: true,
      max_memory_restart: "200M",
      env: {
        NODE_ENV: "development",
      },
      env_production: {
        NODE_ENV: "production",
      },
    },
  ],
};
"""

JSON = """\
{
  "apps": [
    {
      "name": "app",
      "script": "app.js",
      "instances": 1,
      "autorestart": true,
      "max_memory_restart": "200M",
      "env": {
        "NODE_ENV": "development"
      },
      "env_production": {
        "NODE_ENV": "production"
      }
    }
  ]
}
"""

YAML = """\
# pmdaemon ecosystem file: `pmdaemon start ecosystem.yaml`,
# `pmdaemon start ecosystem.yaml --env-name production` for env_production.
# Every field: docs/ecosystem.md. `pmdaemon validate ecosystem.yaml` checks it.
apps:
  - name: app
    script: app.js
    instances: 1
    autorestart: true
    max_memory_restart: 200M
    env:
      NODE_ENV: development
    env_production:
      NODE_ENV: production
"""

TOML = """\
# pmdaemon ecosystem file: `pmdaemon start ecosystem.toml`,
# `pmdaemon start ecosystem.toml --env-name production` for env_production.
# Every field: docs/ecosystem.md. `pmdaemon validate ecosystem.toml` checks it.
[[apps]]
name = "app"
script = "app.js"
instances = 1
autorestart = true
max_memory_restart = "200M"

[apps.env]
NODE_ENV = "development"

[apps.env_production]
NODE_ENV = "production"
"""

SAMPLES = {"js": JS, "json": JSON, "yaml": YAML, "toml": TOML}
DEFAULT_FILES = {
    "js": "ecosystem.config.js",
    "json": "ecosystem.json",
    "yaml": "ecosystem.yaml",
    "toml": "ecosystem.toml",
}
SUFFIXES = {
    ".js": "js",
    ".cjs": "js",
    ".mjs": "js",
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".toml": "toml",
}


def sample_text(path: Path, form: str) -> str:
    text = SAMPLES[form]
    if form in ("yaml", "toml"):
        text = text.replace(f"ecosystem.{form}", path.name)
    if form == "js":
        text = text.replace("ecosystem.config.js", path.name)
        if path.suffix == ".mjs":  # an ES module has no module.exports
            text = text.replace("module.exports = ", "export default ")
    return text


def write_sample(file: str | None, form: str | None, *, force: bool) -> Path:
    """Write the sample; its path. ``simple`` as the file is PM2's `init simple`."""
    if file == "simple" and not os.path.exists(file):
        file = None
    if file is None:
        path = Path(DEFAULT_FILES[form or "js"])
    else:
        path = Path(file)
        by_suffix = SUFFIXES.get(path.suffix.lower())
        if by_suffix is None:
            raise UsageError(
                f"cannot tell the format of {file[:64]!r}: name it .js, .json, .yaml or "
                ".toml, or give --format"
            )
        if form is not None and form != by_suffix:
            raise UsageError(
                f"{file[:64]!r} is not a {form} file name: its suffix says {by_suffix}"
            )
        form = by_suffix
    text = sample_text(path, form or "js")
    try:
        with open(path, "w" if force else "x", encoding="utf-8") as f:
            f.write(text)
    except FileExistsError:
        raise OperationFailed(
            f"{path} exists: nothing written; add --force to overwrite it"
        ) from None
    except OSError as exc:
        raise OperationFailed(f"cannot write {path}: {exc.strerror}") from None
    return path
