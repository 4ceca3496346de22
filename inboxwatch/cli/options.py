"""What every command starts with: its options (--config, -v/-q, --log-format), the
logging they set up, the config they name, and the error boundary's one line. Apart from
cli.common (scans, output, rich) so that the group (cli.main), `--version`, `health` and
`run` load only what they use: click, logging and the config."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from inboxwatch.config import Settings


def _remember_log_format(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value:
        ctx.meta["log_format"] = value  # meta is shared by the group and its command


def log_format_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """--log-format json: one JSON object a line on stderr, for log collectors; before or
    after the subcommand."""
    return click.option(
        "--log-format",
        type=click.Choice(["text", "json"]),
        expose_value=False,
        callback=_remember_log_format,
        help="Log lines as text (default) or one JSON object each.",
    )(func)


def common_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--config, -v, -q and --log-format on every command, as the contract promises."""
    func = log_format_option(func)
    func = click.option("-q", "--quiet", count=True, help="Less logging on stderr.")(func)
    func = click.option("-v", "--verbose", count=True, help="More logging; -vv adds tracebacks.")(
        func
    )
    return click.option("--config", "config_path", metavar="PATH", help="Config file (TOML).")(func)


class _IsoTime(logging.Formatter):
    """RFC 3339 times with the machine's offset (2026-12-04T09:00:00+01:00): log
    collectors parse them, and a reader knows which zone a line was written in."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _now_text(record.created)


def _now_text(created: float, timespec: str = "seconds") -> str:
    return datetime.fromtimestamp(created).astimezone().isoformat(timespec=timespec)


class _JsonLines(logging.Formatter):
    """One JSON object a line: time (RFC 3339, with offset), level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            # Milliseconds: the lines of several replicas are put in one order by it.
            "time": _now_text(record.created, "milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:  # only at -vv: tracebacks are logged nowhere else
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def json_error_line(message: str) -> str:
    """The error boundary's one line (cli.main), as a JSON log line."""
    record = logging.LogRecord("inboxwatch", logging.ERROR, "", 0, message, None, None)
    return _JsonLines().format(record)


def setup_logging(ctx: click.Context, verbose: int, quiet: int, service: bool = False) -> None:
    """Warnings by default; the service logs a line per poll (INFO) with the time."""
    level = ctx.find_root().meta.get("verbosity", 0) + verbose - quiet
    ctx.find_root().meta["verbosity"] = level
    level += service
    handler = logging.StreamHandler(sys.stderr)
    text = ("%(asctime)s " if service else "") + "inboxwatch: %(levelname)s: %(message)s"
    json_lines = ctx.meta.get("log_format") == "json"
    handler.setFormatter(_JsonLines() if json_lines else _IsoTime(text))
    logging.basicConfig(
        handlers=[handler],
        level={-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(
            max(min(level, 2), -1), logging.DEBUG
        ),
        force=True,
    )
    # One line per poll: APScheduler's job bookkeeping and imapclient's protocol trace
    # only with -vv (debugging), never beside the service's own INFO lines.
    quiet_below = logging.WARNING if level < 2 else logging.NOTSET
    for name in ("apscheduler", "imapclient"):
        logging.getLogger(name).setLevel(quiet_below)
    # Apprise's own warnings may quote a service's answer; ours name the service, once.
    logging.getLogger("apprise").setLevel(logging.CRITICAL + 1 if level < 2 else logging.NOTSET)


def load_config(ctx: click.Context, config_path: str | None) -> tuple[Path | None, Settings]:
    """The config named after the subcommand, else before it (`inboxwatch --config F scan`),
    else found (config.find_config); the path is None for the environment alone."""
    # Here, not at the top: pydantic and the config take ~0.15 s that `--version` and a
    # command's `--help` need not pay.
    from inboxwatch.config import find_config, load_settings

    path = find_config(config_path or ctx.find_root().meta.get("config"))
    return path, load_settings(path)
