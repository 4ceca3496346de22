"""argv -> command -> exit code: the click group and the one error boundary."""

from __future__ import annotations

import importlib
import itertools
import sys
from collections.abc import Sequence
from traceback import print_exception

import click

from inboxwatch import __version__
from inboxwatch.cli.options import json_error_line, log_format_option
from inboxwatch.errors import InboxwatchError

INTERNAL_ERROR = 70  # EX_SOFTWARE: a bug, not a mail problem


# Each command's module, loaded when that command runs: `--version`, `health` from a
# container's probe and a cron `run --once` do not pay for the others' imports (scans'
# rich output, init's DNS and XML, digest's Jinja2): `--version` 0.53 -> 0.06 s, `run
# --help` 0.37 -> 0.27 s (bench/README).
COMMANDS = {
    "scan": "scan:scan",
    "demo": "scan:demo",
    "digest": "digest:digest",
    "check": "check:check",
    "run": "run:run",
    "health": "run:health",
    "repair": "run:repair",
    "auth": "auth:auth",
    "init": "init:init",
    "snooze": "snooze:snooze",
    "mute": "snooze:mute",
    "unsnooze": "snooze:unsnooze",
    "snoozed": "snooze:snoozed",
    "explain": "explain:explain_command",
}


class _LazyGroup(click.Group):
    """click's lazily loading group (its docs' "Lazily Loading Subcommands")."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, name = COMMANDS[cmd_name].split(":")
        command = getattr(importlib.import_module(f"inboxwatch.cli.{module}"), name)
        assert isinstance(command, click.Command) and command.name == cmd_name, cmd_name
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="inboxwatch")
@click.option("-v", "--verbose", count=True, help="More logging; -vv adds tracebacks.")
@click.option("-q", "--quiet", count=True, help="Less logging on stderr.")
@click.option("--config", "config_path", metavar="PATH", help="Config file (TOML).")
@log_format_option
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: int, config_path: str | None) -> None:
    """Find every conversation left without a reply past your window (read-only IMAP)."""
    ctx.meta["verbosity"] = verbose - quiet
    ctx.meta["config"] = config_path  # before the subcommand; one after it wins


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return the contract's exit code; no traceback unless -vv."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = cli.main(args=args, prog_name="inboxwatch", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("inboxwatch: interrupted", err=True)
        return 130
    except InboxwatchError as exc:
        _explain(exc, args)
        return exc.exit_code
    except Exception as exc:  # the one boundary: a bug gets one line too
        _explain(exc, args)
        return INTERNAL_ERROR
    return code if isinstance(code, int) else 0


def _explain(exc: BaseException, args: Sequence[str]) -> None:
    traceback = sum(a.count("v") for a in args if a.startswith("-") and not a.startswith("--"))
    traceback += sum(1 for a in args if a == "--verbose")
    if traceback >= 2:
        print_exception(exc, file=sys.stderr)
    if isinstance(exc, InboxwatchError):
        line = f"error: {exc}"
    else:
        line = f"internal error: {exc!r} (run with -vv and report it)"
    json_lines = "--log-format=json" in args or any(
        pair == ("--log-format", "json") for pair in itertools.pairwise(args)
    )
    click.echo(json_error_line(line) if json_lines else f"inboxwatch: {line}", err=True)


def entry_point() -> None:
    sys.exit(main())
