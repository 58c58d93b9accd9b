"""Argument parsing and the command functions. Every command is a short conversation with
the daemon through Client; errors become one line on stderr and an exit code:
0 success, 1 the operation failed, 2 usage error, 3 the daemon could not be reached."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable

from pmdaemon import __version__
from pmdaemon.cli import UsageError, render
from pmdaemon.client import Client
from pmdaemon.errors import DaemonNotRunning, DaemonStartError, PmdError, ProcessNotFound

# typing is only for the type checker: importing it costs the CLI ~3 ms on every command.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn

STATUSES = ("starting", "online", "stopping", "stopped", "restarting", "errored")

# start flags that become config fields of the same name (flag dashes → underscores)
CONFIG_FLAGS = (
    "name",
    "cwd",
    "namespace",
    "port",
    "instances",
    "max_memory_restart",
    "health_check_url",
    "health_check_script",
    "health_check_timeout",
    "health_check_interval",
    "health_check_retries",
    "wait_timeout",
    "interpreter",
    "max_restarts",
    "min_uptime",
    "restart_delay",
    "exp_backoff_restart_delay",
    "kill_timeout",
    "kill_signal",
    "stop_exit_codes",
    "out_file",
    "error_file",
    "log_date_format",
    "max_log_size",
    "max_log_files",
    "env_file",
    "log_file",
    "pid_file",
    "exec_mode",
    "user",
    "group",
    "instance_var",
    "cron_restart",
)


def _columns() -> int:
    """The terminal's width, as argparse finds it, without importing shutil (which brings
    compression modules, milliseconds, into every command)."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns > 0:
        return columns
    try:
        columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        columns = 0
    return columns if columns > 0 else 80


class Formatter(argparse.HelpFormatter):
    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        super().__init__(
            prog, indent_increment, max_help_position, _columns() - 2 if width is None else width
        )


# PM2's names for commands that are called otherwise here: suggested by name, never guessed
# from the spelling (`status` is closer to `start` than to `list`).
PM2_COMMANDS = {
    "status": "list",
    "ps": "list",
    "l": "list",
    "show": "info",
    "desc": "info",
    "log": "logs",
}


def did_you_mean(word: str, known: Iterable[str], prefix: str = "") -> str:
    """`` (did you mean 'start'?)`` for the known word nearest to ``word``, or nothing;
    a ``prefix`` all of them share (``--``) is left out of the comparison."""
    import difflib  # only on the way to an error

    cut = len(prefix)
    words = [k[cut:] for k in known if k.startswith(prefix)]
    close = difflib.get_close_matches(word[cut:], words, n=1, cutoff=0.6)
    return f" (did you mean {prefix + close[0]!r}?)" if close else ""


class Parser(argparse.ArgumentParser):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(**kwargs)
        self.commands: argparse._SubParsersAction[Parser] | None = None

    def error(self, message: str) -> NoReturn:
        """The problem in one line, and where the options are (the whole usage of start
        would bury it)."""
        render.error(f"{message} (see {self.prog} --help)")
        raise SystemExit(2)

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        """A word that is not one of the choices: the nearest one is suggested (argparse
        learns this only in Python 3.14)."""
        choices = action.choices
        if choices is None or value in choices:
            return
        if isinstance(action, argparse._SubParsersAction):
            if value in PM2_COMMANDS:
                self.error(
                    f"unknown command {value!r} (did you mean {PM2_COMMANDS[value]!r}? "
                    f"PM2's {value} is pmdaemon {PM2_COMMANDS[value]})"
                )
            self.error(f"unknown command {value!r}{did_you_mean(str(value), choices)}")
        expected = ", ".join(map(str, choices))
        self.error(
            f"argument {'/'.join(action.option_strings) or action.metavar or action.dest}: "
            f"invalid choice {value!r}{did_you_mean(str(value), map(str, choices))}: "
            f"expected one of {expected}"
        )

    def parse_args(  # type: ignore[override]
        self, args: list[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self.unrecognized(parsed, extras)
        return parsed

    def unrecognized(self, parsed: argparse.Namespace, extras: list[str]) -> NoReturn:
        """An option no parser knows: named, with the nearest option of the command (or of
        pmdaemon itself), and that command's --help."""
        command = self.commands.choices.get(parsed.command) if self.commands else None
        where = command or self
        options = [o for o in where._option_string_actions if o.startswith("--")]
        if command is not None:
            options += [o for o in self._option_string_actions if o.startswith("--")]
        for extra in extras:
            if extra.startswith("-") and extra != "-":
                word = extra.split("=", 1)[0]
                hint = did_you_mean(word, options, "--") if word.startswith("--") else ""
                where.error(f"unknown option {word!r}{hint}")
        where.error(f"unrecognized arguments: {' '.join(extras)}")


def quote(ident: str) -> str:
    """Percent-encode an identifier for a URL path segment."""
    safe = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-"
    return "".join(c if c in safe else "".join(f"%{b:02X}" for b in c.encode()) for c in ident)


def env_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep and re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", text):
        # PM2's `--env production` picks a file's env_production block: here that is
        # --env-name, and -e/--env sets one variable.
        raise argparse.ArgumentTypeError(
            f"{text!r} is not KEY=VALUE: to apply an ecosystem file's env_{text} block "
            f"(PM2's --env {text}), use --env-name {text}"
        )
    if not sep or not key:
        raise argparse.ArgumentTypeError(
            f"invalid environment variable {text!r}: expected KEY=VALUE"
        )
    return key, value


class Context:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        from pmdaemon.paths import default_home

        self.home = default_home()
        self.paint = render.Painter(render.use_colour(sys.stdout))

    def client(self, autostart: bool = True) -> Client:
        return Client(self.home, autostart=autostart)

    def emit(self, data: Any, human: Callable[[], str]) -> None:
        if getattr(self.args, "json", False):
            print(json.dumps(data, indent=2))
        else:
            text = human()
            if text:
                print(text)


# -- commands ------------------------------------------------------------------------------


def flag_config(a: argparse.Namespace) -> dict[str, Any]:
    """The config fields given as flags of `start` (without the script)."""
    config: dict[str, Any] = {}
    for field in CONFIG_FLAGS:
        value = getattr(a, field)
        if value is not None:
            config[field] = value
    if a.autorestart is not None:
        config["autorestart"] = a.autorestart
    if a.no_autorestart:
        if a.autorestart is True:
            raise UsageError("--no-autorestart and --autorestart true contradict each other")
        config["autorestart"] = False
    if a.merge_logs:
        config["merge_logs"] = True
    if a.watch:
        paths = [w for w in a.watch if w is not True]
        config["watch"] = paths or True
    if a.ignore_watch:
        import shlex

        try:  # PM2 splits the list on spaces, honouring quotes
            config["ignore_watch"] = [p for text in a.ignore_watch for p in shlex.split(text)]
        except ValueError as exc:
            raise UsageError(f"cannot split --ignore-watch: {exc}") from None
    if a.watch_delay is not None:
        # PM2's --watch-delay 4 is 4 seconds (a file's watch_delay is milliseconds).
        bare = re.fullmatch(r"\d+(\.\d+)?", a.watch_delay.strip())
        config["watch_delay"] = f"{a.watch_delay.strip()}s" if bare else a.watch_delay
    if a.args is not None:
        import shlex

        if a.script_args:
            raise UsageError("give the script's arguments with --args or after --, not both")
        try:
            config["args"] = shlex.split(a.args)
        except ValueError as exc:
            raise UsageError(f"cannot split --args {a.args[:64]!r}: {exc}") from None
    if a.wait_ready:
        config["wait_ready"] = True
    if a.time:
        config["time"] = True
    if a.env:
        config["env"] = dict(a.env)
    if a.script_args:
        config["args"] = a.script_args
    return config


def true_false(text: str) -> bool:
    """``--autorestart true|false`` (PMDaemon's spelling; yes/no and 1/0 too)."""
    word = text.strip().lower()
    if word in ("true", "yes", "on", "1"):
        return True
    if word in ("false", "no", "off", "0"):
        return False
    raise argparse.ArgumentTypeError(f"invalid value {text[:32]!r}: expected true or false")


def cmd_start(ctx: Context) -> int:
    a = ctx.args
    if a.config and a.script:
        raise UsageError(
            f"start takes either --config FILE or a SCRIPT, not both (got {a.script!r})"
        )
    file = a.config or (a.script if a.script and has_ecosystem_suffix(a.script) else None)
    if file is not None:
        if not os.path.isfile(file):
            raise UsageError(f"ecosystem file {file!r} not found")
        from pmdaemon.cli.ecosystem import start_file

        return start_file(ctx, file)
    if not a.script:
        taken = [w for w in a.watch or () if w is not True]
        if taken:  # `start --watch app.py`: the optional PATH of --watch took the script
            raise UsageError(
                f"start needs a SCRIPT: --watch took {taken[-1]!r} as a path to watch; put "
                f"the script first (pmdaemon start {taken[-1]} --watch)"
            )
        from pmdaemon.config import default_file

        found = default_file()  # as PM2: ecosystem.config.js in the current directory
        if found is not None:
            from pmdaemon.cli.ecosystem import start_file

            return start_file(ctx, found)
    if a.env_name:
        raise UsageError(
            "--env-name applies to ecosystem files: give an ecosystem.config.js, .json, "
            ".yaml, .yml or .toml file"
        )
    if not a.script:
        raise UsageError(
            "start needs a SCRIPT, an id or name, or an ecosystem file (none of "
            "ecosystem.config.js, ecosystem.json, ecosystem.yaml is in this directory)"
        )
    client = ctx.client()
    config: dict[str, Any] = {"script": a.script, **flag_config(a)}
    # One bare word may name an existing process: start it; otherwise it is a script.
    if len(config) == 1 and re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}", a.script):
        try:
            result = client.call("POST", f"/api/processes/{quote(a.script)}/start")
        except ProcessNotFound:
            if a.script.isascii() and a.script.isdigit():
                raise
        else:
            return report(ctx, result)
    body = {"config": config, "env": dict(os.environ), "cwd": os.getcwd()}
    result = client.call("POST", "/api/processes", body)
    operators = [] if os.path.exists(a.script) else shell_operators(a.script)
    if operators:
        render.warn(shell_hint(a, operators, result["processes"]))
    return report(ctx, result)


def shell_operators(command: str) -> list[str]:
    """The shell operators (``&&``, ``|``, ``;``, ``>`` ...) of a command line outside
    quotes: split like a shell splits but run without one, they reach the program as
    plain arguments."""
    found: list[str] = []
    quote, i = "", 0
    while i < len(command):
        c = command[i]
        if quote:
            if c == quote:
                quote = ""
            elif c == "\\" and quote == '"':
                i += 1
        elif c == "\\":
            i += 1
        elif c in "'\"":
            quote = c
        elif c in ";&|<>":
            j = i
            while j < len(command) and command[j] in ";&|<>":
                j += 1
            if command[i:j] not in found:
                found.append(command[i:j])
            i = j
            continue
        i += 1
    return found


def shell_hint(a: argparse.Namespace, operators: list[str], procs: list[dict[str, Any]]) -> str:
    """One line: what became of the operators, and the command line that runs the same
    string through bash instead (this one, the script replaced, the app's name kept)."""
    import shlex

    command = a.script + (" " + shlex.join(a.script_args) if a.script_args else "")
    words = list(a.argv)
    at = words.index(a.script)
    words[at] = "bash"
    if a.name is None and procs:
        name = procs[0]["name"]
        if len(procs) > 1:  # a cluster's instances are NAME-0, NAME-1, ...
            name = name.rsplit("-", 1)[0]
        words[at + 1 : at + 1] = ["-n", name]
    again = shlex.join(["pmdaemon", *words, "--", "-c", command])
    return (
        f"{a.script[:64]!r} has shell operators ({' '.join(operators)}), which reach the "
        f"program as plain arguments (pmdaemon runs no shell); to run it through one, "
        f"delete it and run: {again}"
    )


# As config.NAMED_SUFFIXES (not imported: the CLI reads no file format until it needs one).
# As PM2, a .js file is a script unless it is named *.config.js.
ECOSYSTEM_NAMES = (".json", ".yaml", ".yml", ".toml", ".config.js", ".config.cjs", ".config.mjs")


def has_ecosystem_suffix(text: str) -> bool:
    return text.lower().endswith(ECOSYSTEM_NAMES)


def is_ecosystem_name(text: str) -> bool:
    return has_ecosystem_suffix(text) and os.path.isfile(text)


def expand_files(ctx: Context, idents: list[str]) -> list[str]:
    """Ecosystem files among the identifiers stand for the names of their apps."""
    if not any(is_ecosystem_name(i) for i in idents):
        return idents
    from pmdaemon.cli.ecosystem import app_names

    out: list[str] = []
    for ident in idents:
        out += app_names(ctx, ident) if is_ecosystem_name(ident) else [ident]
    return out


def report(ctx: Context, result: dict[str, Any]) -> int:
    """The answer to a start. Unless --no-wait, the new runs are watched for min_uptime
    first: one that crashes within it makes the start fail, saying so, instead of
    "started successfully" (one that exits 0 is a warning: it did what it was asked).
    Then the waits asked for (--wait-ready, wait_ready)."""
    procs = result.get("processes", [])
    details: list[dict[str, Any]] = []
    if procs:
        from pmdaemon.cli.wait import details_of

        details = details_of(ctx, [str(p["id"]) for p in procs])
    every = getattr(ctx.args, "wait_ready", False)
    ready = [str(d["id"]) for d in details if every or d["config"]["wait_ready"]]
    first = [p for p in procs if str(p["id"]) not in ready]
    crashed: list[str] = []
    if first and not getattr(ctx.args, "no_wait", False):
        from pmdaemon.cli.wait import early_exits

        ended = early_exits(ctx, first, details)
        crashed = [message for _, message, clean in ended if not clean]
        ids = {p["id"] for p in procs}
        now = [v for v in ctx.client().call("GET", "/api/processes") if v["id"] in ids]
        result = {**result, "processes": now}
        if any(clean for *_, clean in ended):
            warned = [m for _, m, clean in ended if clean]
            result["warnings"] = [*result.get("warnings", []), *warned]
        if crashed:
            failed = [{"name": n, "message": m} for n, m, clean in ended if not clean]
            result.update(success=False, errors=[*result.get("errors", []), *failed])
    for warning in result.get("warnings", []):
        render.warn(warning)
    ctx.emit(
        result,
        lambda: (
            ("" if crashed else result["message"] + "\n")
            + render.process_table(result["processes"], ctx.paint)
        ),
    )
    for failure in result.get("errors", []):
        own = failure["message"] in crashed  # these name their process already
        render.error(failure["message"] if own else f"{failure['name']}: {failure['message']}")
    if result.get("errors"):
        return 1
    if not ready:
        return 0
    from pmdaemon.cli.wait import wait_ready

    return wait_ready(ctx, ready)


def for_each(
    ctx: Context, idents: Iterable[str], method: str, action: str, body: Any = None
) -> int:
    client = ctx.client()
    failed = 0
    results: list[dict[str, Any]] = []
    for ident in idents:
        try:
            if method == "DELETE":
                result = client.call("DELETE", f"/api/processes/{quote(ident)}")
            else:
                result = client.call("POST", f"/api/processes/{quote(ident)}/{action}", body)
        except (DaemonNotRunning, DaemonStartError):
            raise
        except PmdError as exc:
            failed += 1
            if not getattr(ctx.args, "json", False):
                render.error(exc.message)
            results.append(
                {"success": False, "id": ident, "code": exc.code, "message": exc.message}
            )
            continue
        results.append(result)
    if getattr(ctx.args, "json", False):
        print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
    else:
        for result in results:
            if result.get("success"):
                print(result["message"])
                print(render.process_table(result["processes"], ctx.paint))
    return 1 if failed else 0


def cmd_apply(ctx: Context) -> int:
    from pmdaemon.cli.ecosystem import apply

    return apply(ctx)


def cmd_validate(ctx: Context) -> int:
    from pmdaemon.cli.ecosystem import validate

    return validate(ctx)


def cmd_scale(ctx: Context) -> int:
    return for_each(ctx, [ctx.args.name], "POST", "scale", {"instances": ctx.args.count})


def interval_seconds(text: str) -> float:
    """monit's interval: a bare number is seconds (PMDaemon's --interval 5), else a
    duration with its unit."""
    from pmdaemon.units import parse_duration

    try:
        return (
            float(text)
            if re.fullmatch(r"\d+(\.\d+)?", text.strip())
            else parse_duration(text, "--interval")
        )
    except PmdError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def cmd_monit(ctx: Context) -> int:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("monit needs a terminal; use `pmdaemon list` in scripts")
    if not 0.2 <= ctx.args.interval <= 3600:
        raise UsageError("--interval must be 0.2 to 3600 seconds")
    import signal

    from pmdaemon.cli.monit import run

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # the terminal is restored on exit
    try:
        return run(ctx.client(), ctx.args.interval)
    except KeyboardInterrupt:
        return 0


def cmd_stop(ctx: Context) -> int:
    return for_each(ctx, expand_files(ctx, ctx.args.ids), "POST", "stop")


def cmd_restart(ctx: Context) -> int:
    body: dict[str, Any] = {"env": dict(os.environ)} if ctx.args.update_env else {}
    if ctx.args.port is not None:
        body["port"] = ctx.args.port
    idents = expand_files(ctx, ctx.args.ids)
    code = for_each(ctx, idents, "POST", "restart", body or None)
    return waited(ctx, code, idents)


def waited(ctx: Context, code: int, idents: list[str]) -> int:
    if code or not ctx.args.wait_ready:
        return code
    from pmdaemon.cli.wait import wait_ready

    return wait_ready(ctx, idents)


def cmd_reload(ctx: Context) -> int:
    body = {"port": ctx.args.port} if ctx.args.port is not None else None
    idents = expand_files(ctx, ctx.args.ids)
    return waited(ctx, for_each(ctx, idents, "POST", "reload", body), idents)


def cmd_web(ctx: Context) -> int:
    from pmdaemon.cli.web import cmd_web as run

    return run(ctx.home, ctx.args)


def cmd_show_api_key(ctx: Context) -> int:
    from pmdaemon.cli.web import cmd_show_api_key as run

    return run(ctx.home, json_out=ctx.args.json)


def cmd_regenerate_api_key(ctx: Context) -> int:
    from pmdaemon.cli.web import cmd_regenerate_api_key as run

    return run(ctx.home, json_out=ctx.args.json)


def confirm(question: str) -> bool:
    """Ask on the terminal. Without one nobody can answer: an error saying to add
    --force (a script that deletes everything must say so)."""
    if not sys.stdin.isatty():
        raise PmdError(
            f"{question[:-1].lower() if question.endswith('?') else question}: standard input "
            "is not a terminal to confirm on, so nothing was deleted; add --force to delete "
            "without asking"
        )
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def cmd_delete(ctx: Context) -> int:
    a = ctx.args
    client = ctx.client()
    if a.status:
        if len(a.ids) != 1 or a.ids[0] not in STATUSES:
            raise UsageError(f"delete --status takes one status: one of {', '.join(STATUSES)}")
        procs = client.call("GET", f"/api/processes?status={a.ids[0]}")
        idents = [str(p["id"]) for p in procs]
        if not idents:
            print(f"no {a.ids[0]} processes")
            return 0
        question = (
            f"Delete {len(idents)} {a.ids[0]} process(es): {', '.join(p['name'] for p in procs)}?"
        )
    else:
        idents = expand_files(ctx, a.ids)
        question = "Delete all processes?" if "all" in idents else ""
    if question and not a.force and not confirm(question):
        print("nothing deleted")
        return 1
    return for_each(ctx, idents, "DELETE", "delete")


def cmd_list(ctx: Context) -> int:
    a = ctx.args
    query = []
    if a.namespace:
        query.append(f"namespace={quote(a.namespace)}")
    if a.status:
        query.append(f"status={quote(a.status)}")
    path = "/api/processes" + ("?" + "&".join(query) if query else "")
    procs = ctx.client().call("GET", path)
    hint = "no process matches" if query else "no processes: start one with `pmdaemon start SCRIPT`"
    ctx.emit(procs, lambda: render.process_table(procs, ctx.paint, hint))
    return 0


def cmd_info(ctx: Context) -> int:
    data = ctx.client().call("GET", f"/api/processes/{quote(ctx.args.id)}")
    items = data if isinstance(data, list) else [data]
    ctx.emit(data, lambda: "\n\n".join(render.process_detail(p, ctx.paint) for p in items))
    return 0


def cmd_logs(ctx: Context) -> int:
    a = ctx.args
    kind = "error" if a.err else "out" if a.out else "all"
    ident = a.id or "all"
    path = f"/api/logs?id={quote(ident)}&lines={a.lines}&type={kind}"
    client = ctx.client()
    if not a.follow:
        data = client.call("GET", path)
        if a.json:
            print(json.dumps(data, indent=2))
        else:
            print_log_entries(ctx, data["logs"], grouped=True)
        return 0
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # end like Ctrl-C: cleanly
    response = client.open("GET", path + "&follow=1", timeout=None)
    if response.status >= 400:
        from pmdaemon.client import error_from

        raise error_from(response.status, json.loads(response.body() or b"null"))
    try:
        for raw in response.lines():
            entry = json.loads(raw)
            if a.json:
                print(json.dumps(entry), flush=True)
            else:
                print_log_entries(ctx, [entry], grouped=False)
                sys.stdout.flush()
    except KeyboardInterrupt:
        return 0
    except (EOFError, OSError):
        print("log stream ended: the daemon stopped", file=sys.stderr)
        return 0
    finally:
        response.close()
    return 0


def print_log_entries(ctx: Context, entries: list[dict[str, Any]], *, grouped: bool) -> None:
    paint = ctx.paint
    current = None
    for entry in entries:
        stream = "err" if entry["type"] == "error" else "out"
        # As in the file: the stamp of a process with `time` in front of its line.
        text = (
            f"{entry['timestamp']}: {entry['message']}" if entry["timestamp"] else entry["message"]
        )
        if grouped:
            key = (entry["name"], stream)
            if key != current:
                current = key
                print(paint(f"==> {entry['name']} ({stream}) <==", "36;1"))
            print(paint(text, "31") if stream == "err" else text)
        else:
            prefix = paint(f"{entry['name']} {stream} |", "31" if stream == "err" else "36")
            print(f"{prefix} {text}")
    if grouped and not entries:
        print("no log lines")


def cmd_reset(ctx: Context) -> int:
    """PM2's reset: the restart count and the unstable-run count start again from 0."""
    return for_each(ctx, ctx.args.ids, "POST", "reset")


def cmd_env(ctx: Context) -> int:
    """PM2's env ID: the environment of a process, values included. Only over the Unix
    socket (owner only): the TCP API and info show the variables' names alone."""
    data = ctx.client().call("GET", f"/api/processes/{quote(ctx.args.id)}/env")
    items = data if isinstance(data, list) else [data]

    def human() -> str:
        blocks = []
        for item in items:
            lines = [f"{key}={value}" for key, value in sorted(item["env"].items())]
            head = [ctx.paint.bold(f"==> {item['name']} (id {item['id']}) <==")]
            blocks.append("\n".join((head if len(items) > 1 else []) + lines))
        return "\n\n".join(blocks)

    ctx.emit(data, human)
    return 0


def cmd_jlist(ctx: Context) -> int:
    """PM2's jlist (list as JSON on one line) and prettylist (indented)."""
    procs = ctx.client().call("GET", "/api/processes")
    if ctx.args.command == "prettylist":
        print(json.dumps(procs, indent=2))
    else:  # as PM2's JSON.stringify writes it
        print(json.dumps(procs, separators=(",", ":")))
    return 0


def cmd_init(ctx: Context) -> int:
    from pmdaemon.cli.sample import write_sample

    a = ctx.args
    path = write_sample(a.file, a.format, force=a.force)
    ctx.emit(
        {"success": True, "file": str(path)},
        lambda: (
            f"wrote {path}: check it with `pmdaemon validate {path.name}`, "
            f"start it with `pmdaemon start {path.name}`"
        ),
    )
    return 0


def cmd_flush(ctx: Context) -> int:
    return for_each(ctx, [ctx.args.id or "all"], "POST", "flush")


def is_signal(word: str) -> bool:
    name = word.upper()
    if word.isascii() and word.isdigit():
        return True
    import signal

    return (name if name.startswith("SIG") else "SIG" + name) in signal.Signals.__members__


def signal_and_targets(words: list[str]) -> tuple[str, list[str]]:
    """``signal NAME SIGNAL`` (PMDaemon's order) or ``signal SIGNAL ID...`` (the older one):
    the signal is the word that names one."""
    if len(words) < 2:
        raise UsageError("signal needs a process and a signal: pmdaemon signal NAME SIGUSR1")
    first, last = words[0], words[-1]
    if len(words) == 2 and first.isdigit() and last.isdigit():
        raise UsageError(
            f"signal {first} {last} is ambiguous: either could be the signal's number; name the "
            f"signal instead (pmdaemon signal {first} SIGUSR1)"
        )
    if len(words) == 2 and is_signal(last) and not is_signal(first):
        return last, [first]
    if is_signal(first):
        return first, words[1:]
    if len(words) == 2 and is_signal(last):
        return last, [first]
    raise PmdError(
        f"unknown signal: none of {' '.join(w[:32] for w in words[:4])!r} names one; expected "
        "pmdaemon signal NAME SIGNAL (e.g. SIGUSR1, HUP or 10)"
    )


def cmd_signal(ctx: Context) -> int:
    sig, targets = signal_and_targets(ctx.args.words)
    return for_each(ctx, targets, "POST", "signal", {"signal": sig})


def cmd_ping(ctx: Context) -> int:
    try:
        status = ctx.client(autostart=False).call("GET", "/daemon")
    except DaemonNotRunning:
        ctx.emit({"running": False}, lambda: f"daemon is not running (home {ctx.home})")
        return 3
    status["running"] = True
    ctx.emit(
        status,
        lambda: (
            f"daemon is running: pid {status['pid']}, version {status['version']}, "
            f"up {status['uptime_seconds']}s, {status['online']}/{status['processes']} processes "
            f"online, home {status['home']}"
            + (
                ""
                if status.get("state_saved", True)
                else "\nwarning: the state could not be saved (disk full?); retrying"
            )
        ),
    )
    return 0


def cmd_save(ctx: Context) -> int:
    result = ctx.client().call("POST", "/daemon/save")
    ctx.emit(result, lambda: str(result["message"]))
    return 0


def cmd_resurrect(ctx: Context) -> int:
    result = ctx.client().call("POST", "/daemon/resurrect")
    ctx.emit(
        result,
        lambda: (
            result["message"]
            + (
                "\n" + render.process_table(result["processes"], ctx.paint)
                if result["processes"]
                else ""
            )
        ),
    )
    return 0


def cmd_startup(ctx: Context) -> int:
    from pmdaemon.cli import startup

    a = ctx.args
    startup.check_init(a.init)
    if a.print:
        unit = startup.render_unit(ctx.home, a.user)
        ctx.emit({"unit": unit}, lambda: unit.rstrip("\n"))
        return 0
    lines = startup.install(ctx.home, init=a.init, user=a.user, directory=a.unit_dir)
    ctx.emit({"success": True, "messages": lines}, lambda: "\n".join(lines))
    return 0


def cmd_unstartup(ctx: Context) -> int:
    from pmdaemon.cli import startup

    a = ctx.args
    lines = startup.remove(init=a.init, user=a.user, directory=a.unit_dir)
    ctx.emit({"success": True, "messages": lines}, lambda: "\n".join(lines))
    return 0


def cmd_kill(ctx: Context) -> int:
    client = ctx.client(autostart=False)
    try:
        result = client.call("POST", "/daemon/kill")
    except DaemonNotRunning:
        ctx.emit({"success": True, "running": False}, lambda: "daemon is not running")
        return 0
    pid = result["pid"]
    deadline = time.monotonic() + 120
    while os.path.exists(f"/proc/{pid}") and _not_zombie(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    n = result["restore_count"]
    ctx.emit(
        result,
        lambda: (
            f"daemon stopped; {n} process{'es' if n != 1 else ''} will be "
            "restored when it next starts"
        ),
    )
    return 0


def _not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


# -- parser --------------------------------------------------------------------------------


class _Unused:
    """Stands in for the parser of a command that is not on the command line: what is
    added to it is dropped. Building every command's parser would cost every command
    milliseconds; ``--help`` and unknown commands still get them all."""

    def add_argument(self, *args: Any, **kwargs: Any) -> None:
        return None

    def add_mutually_exclusive_group(self, **kwargs: Any) -> _Unused:
        return self

    def set_defaults(self, **kwargs: Any) -> None:
        return None


_UNUSED = _Unused()


def _abbreviates(word: str, option: str) -> bool:
    """``word`` is ``option`` or an abbreviation argparse would take for it."""
    return len(word) >= 3 and option.startswith(word)


def command_word(argv: list[str]) -> str | None:
    """The command of a command line: its first word that is not a top-level option.
    None when there is none, or when top-level help is asked for before it."""
    words = iter(argv)
    for word in words:
        if word == "-h" or _abbreviates(word, "--help"):
            return None
        if word == "-c" or _abbreviates(word, "--config"):
            next(words, None)  # its value
        elif not word.startswith("-"):
            return word
    return None


def build_parser(only: str | None = None) -> Parser:
    """The parser of every command, or, with ``only``, of that command alone (all of them
    when it is not a command)."""
    parser = Parser(
        prog="pmdaemon",
        description="A process manager that keeps apps in any language running.",
        epilog="Exit codes: 0 success, 1 the operation failed, 2 usage error, "
        "3 the daemon could not be reached or started. Home: $PMDAEMON_HOME or ~/.pmdaemon.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"pmdaemon {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show tracebacks of internal errors"
    )
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="an ecosystem file (JSON, YAML, TOML or PM2's .config.js) for start",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    parser.commands = sub

    def command(
        name: str,
        func: Callable[[Context], int],
        help: str,
        aliases: tuple[str, ...] = (),
        json_flag: bool = True,
    ) -> Parser:
        if only is not None and only != name and only not in aliases:
            return _UNUSED  # type: ignore[return-value]
        p = sub.add_parser(name, help=help, description=help, aliases=list(aliases))
        p.set_defaults(func=func)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print machine-readable JSON")
        return p

    p = command(
        "start",
        cmd_start,
        "create and start a process, or start an existing one by id or "
        "name, or every app of an ecosystem file",
        aliases=("s",),
    )
    p.add_argument(
        "script",
        nargs="?",
        metavar="SCRIPT|ID|NAME|FILE",
        help="a program on PATH, a file, a quoted command line, an existing process, or an "
        "ecosystem file (.config.js, .json, .yaml, .yml, .toml)",
    )
    p.add_argument(
        "-n",
        "--name",
        help="process name (default: the script's stem); with a file: start only "
        "the app of this name",
    )
    p.add_argument(
        "--env-name",
        metavar="PROFILE",
        help="with a file: apply each app's env_PROFILE block (else $PMDAEMON_ENV)",
    )
    p.add_argument("--cwd", help="working directory (default: the current directory)")
    p.add_argument(
        "-e",
        "--env",
        action="append",
        type=env_pair,
        metavar="KEY=VALUE",
        help="extra environment variable (repeatable)",
    )
    p.add_argument("--namespace", help="a label to group processes (default: default)")
    p.add_argument(
        "-p",
        "--port",
        help="a port given to the app as $PORT: 3000, a range 3000-3003 (instance i "
        "gets 3000+i) or auto:5000-5100 (free ports)",
    )
    p.add_argument(
        "-i",
        "--instances",
        help="number of instances, max (CPU count), or 0 (created, not started)",
    )
    p.add_argument(
        "--health-check-url", metavar="URL", help="healthy when this answers 2xx within the timeout"
    )
    p.add_argument(
        "--health-check-script", metavar="CMD", help="healthy when this exits 0 within the timeout"
    )
    p.add_argument("--health-check-timeout", metavar="D", help="per check (5s)")
    p.add_argument("--health-check-interval", metavar="D", help="between checks (30s)")
    p.add_argument(
        "--health-check-retries",
        metavar="N",
        help="consecutive failures before unhealthy and a restart (3)",
    )
    add_wait_flags(p)
    p.add_argument(
        "--max-memory",
        "--max-memory-restart",
        dest="max_memory_restart",
        metavar="SIZE",
        help="restart when the process tree's memory exceeds this (e.g. 100M)",
    )
    p.add_argument(
        "--cron-restart",
        "--cron",
        metavar="EXPR",
        help="restart on this cron schedule (PM2's syntax: 5 fields, or 6 with seconds)",
    )
    p.add_argument("--interpreter", help="run the script with this program (none: run directly)")
    p.add_argument(
        "--max-restarts",
        help="consecutive unstable restarts before errored (16), or unlimited",
    )
    p.add_argument("--min-uptime", help="a run shorter than this is unstable (1s)")
    p.add_argument("--restart-delay", help="wait before each restart (0)")
    p.add_argument(
        "--exp-backoff-restart-delay", help="first restart delay, growing x1.5 per crash up to 15s"
    )
    p.add_argument("--kill-timeout", help="wait after the kill signal before SIGKILL (1600ms)")
    p.add_argument("--kill-signal", help="first signal sent on stop (SIGTERM)")
    p.add_argument("--stop-exit-codes", help="comma-separated exit codes that are not restarted")
    p.add_argument("--no-autorestart", action="store_true", help="do not restart when it exits")
    p.add_argument(
        "--autorestart",
        type=true_false,
        metavar="true|false",
        help="restart when it exits (true)",
    )
    p.add_argument("--env-file", metavar="FILE", help="KEY=VALUE lines read on every start")
    p.add_argument(
        "--args",
        metavar="'ARGS'",
        help="the script's arguments as one quoted string, split like a shell (or after --)",
    )
    p.add_argument(
        "--exec-mode",
        choices=["fork", "cluster", "fork_mode", "cluster_mode"],
        help="fork (default) or cluster (with -i: instances on a port range)",
    )
    p.add_argument("--log-file", metavar="FILE", help="stdout and stderr together, too")
    p.add_argument("--pid-file", metavar="FILE", help="holds the PID of the current run")
    p.add_argument(
        "--merge-logs",
        action="store_true",
        help="instances of a cluster share one set of log files",
    )
    p.add_argument(
        "--instance-var",
        metavar="NAME",
        help="also give the instance number in this variable",
    )
    p.add_argument("--user", help="run as this user (the daemon must run as root)")
    p.add_argument("--group", help="run with this group (the daemon must run as root)")
    p.add_argument(
        "--watch",
        nargs="?",
        action="append",
        const=True,
        metavar="PATH",
        help="restart when files change: alone, under the working directory; with PATH "
        "(repeatable), under these",
    )
    p.add_argument(
        "--ignore-watch",
        action="append",
        metavar="'PATHS'",
        help="paths or globs not watched, separated by spaces (repeatable)",
    )
    p.add_argument(
        "--watch-delay",
        metavar="D",
        help="wait after a change before restarting: a bare number is seconds (PM2's), "
        "or 500ms, 2s",
    )
    p.add_argument("--out-file", help="stdout log file (default: <home>/logs/<name>-out.log)")
    p.add_argument("--error-file", help="stderr log file (default: <home>/logs/<name>-error.log)")
    p.add_argument("--time", action="store_true", help="start each log line with a timestamp")
    p.add_argument(
        "--log-date-format",
        metavar="FMT",
        help="timestamp format, moment.js style (YYYY-MM-DDTHH:mm:ss.SSSZ) or strftime "
        "(%%Y-%%m-%%d %%H:%%M:%%S); implies --time",
    )
    p.add_argument("--max-log-size", metavar="SIZE", help="rotate a log file at this size (10M)")
    p.add_argument("--max-log-files", metavar="N", help="rotated files kept per log (5)")
    p.add_argument(
        "--no-wait",
        action="store_true",
        help="return once started, without watching the processes for min_uptime",
    )
    p.set_defaults(script_args=[])

    p = command(
        "apply",
        cmd_apply,
        "make the processes what an ecosystem file says: print the plan (create, update, "
        "unchanged, remove) and carry it out",
        aliases=("startOrRestart", "startOrReload", "startOrGracefulReload"),
    )
    p.add_argument("file", metavar="FILE", help="an ecosystem file (as for start)")
    p.add_argument("--env-name", "--env", metavar="PROFILE", help="apply env_PROFILE blocks")
    p.add_argument(
        "--prune",
        action="store_true",
        help="also delete the apps an earlier start or apply of this file made that it no "
        "longer has",
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")

    p = command("validate", cmd_validate, "check an ecosystem file and print every problem")
    p.add_argument("file", metavar="FILE", help="a .json, .yaml, .yml, .toml or .js/.cjs/.mjs file")
    p.add_argument("--env-name", metavar="PROFILE", help="check with this env_PROFILE applied")

    p = command(
        "monit", cmd_monit, "live full-screen monitor (q quits, arrows select)", json_flag=False
    )
    p.add_argument(
        "-i",
        "--interval",
        type=interval_seconds,
        default=1.0,
        help="between refreshes: seconds (1, 0.5) or a duration (2s, 500ms)",
    )

    p = command("scale", cmd_scale, "change the number of instances of a cluster")
    p.add_argument("name", metavar="NAME", help="the cluster's name")
    p.add_argument("count", metavar="N", type=int, help="instances wanted")

    p = command("stop", cmd_stop, "stop processes", aliases=("st",))
    p.add_argument(
        "ids", nargs="+", metavar="ID", help="id, name, namespace, all, or an ecosystem file"
    )

    p = command("restart", cmd_restart, "restart processes", aliases=("r",))
    p.add_argument(
        "ids", nargs="+", metavar="ID", help="id, name, namespace, all, or an ecosystem file"
    )
    p.add_argument(
        "--update-env",
        action="store_true",
        help="replace the captured environment with this shell's",
    )
    p.add_argument("-p", "--port", help="a port for this run only (the saved config keeps its own)")
    add_wait_flags(p)

    p = command("reload", cmd_reload, "restart processes one at a time")
    p.add_argument(
        "ids", nargs="+", metavar="ID", help="id, name, namespace, all, or an ecosystem file"
    )
    p.add_argument("-p", "--port", help="a port for this run only")
    add_wait_flags(p)

    p = command("delete", cmd_delete, "stop and remove processes", aliases=("del",))
    p.add_argument(
        "ids",
        nargs="+",
        metavar="ID",
        help="id, name, namespace, all, or an ecosystem file; a status with --status",
    )
    p.add_argument("--status", action="store_true", help="delete every process in the given status")
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")

    p = command("list", cmd_list, "list processes", aliases=("ls",))
    p.add_argument("--namespace", help="only this namespace")
    p.add_argument("--status", choices=STATUSES, help="only this status")

    p = command("info", cmd_info, "everything about one process", aliases=("describe",))
    p.add_argument("id", metavar="ID", help="id or name")

    p = command("logs", cmd_logs, "show recent log lines, or follow them")
    p.add_argument("id", nargs="?", metavar="ID", help="id or name (default: all processes)")
    p.add_argument(
        "-n",
        "-l",
        "--lines",
        type=int,
        default=20,
        help="lines per file (20); with --follow, 0 prints only new lines",
    )
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    stream = p.add_mutually_exclusive_group()
    stream.add_argument("--err", "--error", action="store_true", help="stderr only")
    stream.add_argument("--out", action="store_true", help="stdout only")
    p.add_argument(
        "--timestamps",
        action="store_true",
        help="show each line's time (the log keeper stamps lines of apps started with --time; "
        "they are always shown)",
    )

    p = command("reset", cmd_reset, "set the restart count of processes back to 0 (PM2's reset)")
    p.add_argument("ids", nargs="+", metavar="ID", help="id, name, namespace or all")

    p = command("env", cmd_env, "print the environment of a process, values included (PM2's env)")
    p.add_argument("id", metavar="ID", help="id or name")

    for name, text in (
        ("jlist", "list processes as JSON on one line (PM2's jlist)"),
        ("prettylist", "list processes as indented JSON (PM2's prettylist)"),
    ):
        command(name, cmd_jlist, text, json_flag=False)

    p = command(
        "init",
        cmd_init,
        "write a sample ecosystem file (ecosystem.config.js, PM2's default name)",
        aliases=("ecosystem",),
    )
    p.add_argument(
        "file",
        nargs="?",
        metavar="FILE",
        help="where to write it (default: ecosystem.config.js, or ecosystem.FORMAT); "
        "PM2's `init simple` writes the same sample",
    )
    p.add_argument(
        "--format",
        choices=("js", "json", "yaml", "toml"),
        help="the file's format (default: from FILE's suffix, else js)",
    )
    p.add_argument("-f", "--force", action="store_true", help="overwrite an existing file")

    p = command("flush", cmd_flush, "empty the log files of processes")
    p.add_argument("id", nargs="?", metavar="ID", help="id or name (default: all processes)")

    p = command(
        "signal",
        cmd_signal,
        "send a signal to processes: signal NAME SIGNAL (PMDaemon's order) or signal SIGNAL ID... ",
    )
    p.add_argument(
        "words",
        nargs="+",
        metavar="NAME SIGNAL",
        help="a process (id, name or all) and a signal (SIGUSR1, HUP or 10), in either order",
    )

    p = command(
        "web",
        cmd_web,
        "serve the web API (REST + WebSocket) for this home's "
        "daemon; with no daemon running, become the daemon in the foreground",
        json_flag=False,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("-p", "--port", type=int, default=9615, help="port (9615; 0 picks one)")
    p.add_argument(
        "--api-key", help="the API key (else --api-key-file, $PMDAEMON_API_KEY, <home>/api-key)"
    )
    p.add_argument("--api-key-file", help="read the API key from this file")
    p.add_argument(
        "--read-only-api-key",
        action="append",
        metavar="KEY",
        help="a key that may only read (repeatable)",
    )
    p.add_argument("--tls-cert", help="serve HTTPS and WSS with this certificate (PEM)")
    p.add_argument("--tls-key", help="the certificate's private key (PEM)")
    p.add_argument(
        "--cors-origin",
        action="append",
        metavar="ORIGIN",
        help="allow browser requests from this origin (repeatable)",
    )
    p.add_argument("--ws-auth", action="store_true", help="every /ws connection needs the key")
    p.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="allow serving without a key on a non-loopback address",
    )
    p.add_argument(
        "--verbose",
        dest="verbose_web",
        action="store_true",
        help="log every request (method, path, status, time, client, auth outcome)",
    )
    p.add_argument(
        "--rate-limit",
        default="100",
        metavar="N|off",
        help="requests a minute per client address, at most N/5 in any 10 s (100); "
        "answers carry X-RateLimit-* headers, and 429 past the limit",
    )
    command(
        "show-api-key",
        cmd_show_api_key,
        "print the stored API key (<home>/api-key)",
    )
    command(
        "regenerate-api-key",
        cmd_regenerate_api_key,
        "make a new random API key and store it in <home>/api-key (mode 0600)",
    )

    command("ping", cmd_ping, "report whether the daemon runs")
    command("save", cmd_save, "save the process list for resurrect (<home>/dump.json)")
    command(
        "resurrect",
        cmd_resurrect,
        "re-create the saved processes that do not exist now, and start those that ran",
    )
    for name, func, text in (
        ("startup", cmd_startup, "install a systemd unit that starts the daemon at boot"),
        ("unstartup", cmd_unstartup, "remove the unit installed by startup"),
    ):
        p = command(name, func, text)
        p.add_argument("init", nargs="?", metavar="INIT", help="the init system: systemd")
        p.add_argument("--user", action="store_true", help="a unit of your own systemd --user")
        p.add_argument(
            "--unit-dir",
            metavar="DIR",
            help="write the unit here, and do not enable it"
            if name == "startup"
            else "remove the unit from here (where startup --unit-dir wrote it), and do not "
            "disable anything",
        )
        if name == "startup":
            p.add_argument("--print", action="store_true", help="print the unit, change nothing")
    command(
        "kill", cmd_kill, "stop the daemon and its processes (they come back on its next start)"
    )
    if only is not None and only not in sub.choices:
        return build_parser()
    return parser


def add_wait_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--wait-ready",
        action="store_true",
        help="wait until every instance is ready (healthy, or up for min_uptime)",
    )
    p.add_argument(
        "--wait-timeout",
        metavar="D",
        help="give up waiting after this long (the app's wait_timeout, 30s)",
    )


def split_script_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """``start X -n y -- a b`` → the part argparse sees and the script's own arguments."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, []


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    argv, script_args = split_script_args(argv)
    parser = build_parser(only=command_word(argv))
    args = parser.parse_args(argv)
    args.argv = argv
    if args.command is None:
        parser.print_help()
        return 2
    if script_args:
        if args.command != "start":
            parser.error("arguments after -- are only accepted by start")
        args.script_args = script_args
    if getattr(args, "lines", 0) is not None and getattr(args, "lines", 0) < 0:
        parser.error("--lines must be zero or more")
    idents = [*getattr(args, "ids", []), getattr(args, "id", None), getattr(args, "script", None)]
    if any(ident is not None and not ident.strip() for ident in idents):
        parser.error("an id or name must not be empty")
    ctx = Context(args)
    try:
        return int(args.func(ctx))
    except UsageError as exc:
        render.error(str(exc))
        return 2
    except (DaemonNotRunning, DaemonStartError) as exc:
        render.error(exc.message)
        return 3
    except PmdError as exc:
        for line in exc.message.splitlines():
            render.error(line)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if args.verbose:
            raise
        render.error(
            f"internal error: {type(exc).__name__}: {exc} (run with --verbose for details)"
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
