"""The CLI side of ecosystem files: `start FILE`, `validate FILE`, and files given to
stop/restart/reload/delete. The file is read and checked here, completely, before anything
is sent to the daemon."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from pmdaemon import config
from pmdaemon.cli import render

if TYPE_CHECKING:
    from pmdaemon.cli.main import Context


def _profile(ctx: Context) -> str | None:
    return getattr(ctx.args, "env_name", None) or os.environ.get("PMDAEMON_ENV") or None


def start_file(ctx: Context, file: str) -> int:
    from pmdaemon.cli.main import flag_config, report

    a = ctx.args
    overrides = flag_config(a)
    overrides.pop("name", None)  # with a file, --name picks an app
    if "cwd" in overrides:  # a --cwd typed in the shell is relative to the shell
        overrides["cwd"] = os.path.abspath(overrides["cwd"])
    apps = config.load(Path(file), env_name=_profile(ctx), overrides=overrides, only=a.name)
    return report(ctx, ctx.client().call("POST", "/api/processes", _file_body(file, apps)))


def _file_body(file: str, apps: list[config.App]) -> dict[str, object]:
    """The apps of a file as the daemon takes them (its warnings printed first)."""
    for warning in sorted({w for app in apps for w in app.warnings}):
        render.warn(warning)
    return {
        "apps": [app.raw for app in apps],
        "env": dict(os.environ),
        "cwd": os.getcwd(),
        "source": os.path.abspath(file),
    }


def apply(ctx: Context) -> int:
    """`apply FILE`: the daemon works out the plan against what runs and carries it out;
    PM2's startOrRestart / startOrReload also restart / reload the unchanged apps."""
    a = ctx.args
    apps = config.load(Path(a.file), env_name=_profile(ctx))
    body = {**_file_body(a.file, apps), "prune": a.prune, "dry_run": a.dry_run}
    client = ctx.client()
    result = client.call("POST", "/api/apply", body)
    again = {"startOrRestart": "restart", "startOrReload": "reload"}.get(a.command)
    if a.command == "startOrGracefulReload":
        again = "reload"
    if again and not a.dry_run:
        for item in result["plan"]:
            if item["action"] == "unchanged":
                client.call("POST", f"/api/processes/{quote(item['name'], safe='')}/{again}")
                item["action"] = f"unchanged, {again}ed"
    if ctx.args.json:
        print(json.dumps(result, indent=2))
        return 0 if result["success"] else 1
    width = max(len(i["action"]) for i in result["plan"]) + 2
    print(f"{a.file}:{' (dry run: nothing is changed)' if a.dry_run else ''}")
    for item in result["plan"]:
        changes = f" ({', '.join(item['changes'])})" if item["changes"] else ""
        print(f"  {item['action'].ljust(width)}{item['name']}{changes}")
    for warning in result.get("warnings", []):
        render.warn(warning)
    for error in result.get("errors", []):
        render.error(f"{error['name']}: {error['message']}")
    return 0 if result["success"] else 1


def app_names(ctx: Context, file: str) -> list[str]:
    return config.app_names(Path(file))


def validate(ctx: Context) -> int:
    try:
        apps = config.load(Path(ctx.args.file), env_name=_profile(ctx))
    except config.EcosystemError as exc:
        if ctx.args.json:
            problems = [str(p) for p in exc.problems]
            print(json.dumps({"valid": False, "file": ctx.args.file, "problems": problems}))
            return 1
        for problem in exc.problems:
            render.error(str(problem))
        print(f"{ctx.args.file}: {len(exc.problems)} problem(s)", file=sys.stderr)
        return 1
    warnings = sorted({w for app in apps for w in app.warnings})
    if ctx.args.json:
        shown = {"valid": True, "file": ctx.args.file, "apps": [a.spec.name for a in apps]}
        print(json.dumps({**shown, "warnings": warnings}, indent=2))
        return 0
    for warning in warnings:
        render.warn(warning)
    names = ", ".join(app.spec.name for app in apps)
    print(f"{ctx.args.file}: {len(apps)} app(s) valid: {names}")
    return 0
