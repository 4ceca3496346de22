"""argv -> settings -> app -> output -> exit code. The one error boundary."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from traceback import print_exception
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from inboxwatch import __version__
from inboxwatch.core.scan import AccountPlan, SourceFactory, open_imap, run_scan
from inboxwatch.config import Digest, Settings, find_config, load_settings, parse_duration
from inboxwatch.errors import InboxwatchError, UsageError
from inboxwatch.local.source import LocalSource
from inboxwatch.core.model import Report
from inboxwatch.cli.output import dumps, render_errors, render_table
from inboxwatch.core.rules import Policy
from inboxwatch.core.ports import MailSource

log = logging.getLogger("inboxwatch")
DEMO_AS_OF = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
DEMO_ADDRESS = "sam@studio.example"
INTERNAL_ERROR = 70  # EX_SOFTWARE: a bug, not a mail problem


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _instant(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time (2026-11-20T17:00:00Z)"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _common(func: Callable[..., Any]) -> Callable[..., Any]:
    """--config, -v and -q on every command, as the contract promises."""
    func = click.option("-q", "--quiet", count=True, help="Less logging on stderr.")(func)
    func = click.option("-v", "--verbose", count=True, help="More logging; -vv adds tracebacks.")(
        func
    )
    return click.option("--config", "config_path", metavar="PATH", help="Config file (TOML).")(func)


def _setup_logging(ctx: click.Context, verbose: int, quiet: int, service: bool = False) -> None:
    """Warnings by default; the service logs a line per poll (INFO) with the time."""
    level = ctx.find_root().meta.get("verbosity", 0) + verbose - quiet
    ctx.find_root().meta["verbosity"] = level
    level += service
    logging.basicConfig(
        stream=sys.stderr,
        level={-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(
            max(min(level, 2), -1), logging.DEBUG
        ),
        format=("%(asctime)s " if service else "") + "inboxwatch: %(levelname)s: %(message)s",
        force=True,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="inboxwatch")
@click.option("-v", "--verbose", count=True, help="More logging; -vv adds tracebacks.")
@click.option("-q", "--quiet", count=True, help="Less logging on stderr.")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: int) -> None:
    """Find every conversation left without a reply past your window (read-only IMAP)."""
    ctx.meta["verbosity"] = verbose - quiet


class _RatedBar:
    """Messages fetched of those expected, and the rate, on a terminal's stderr."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.task = bar.add_task("reading mail", total=0, rate="")
        self.started = time.monotonic()
        self.done = 0

    def expect(self, count: int) -> None:
        self.bar.update(self.task, total=(self.bar.tasks[0].total or 0) + count)

    def advance(self, count: int) -> None:
        self.done += count
        rate = self.done / max(time.monotonic() - self.started, 1e-6)
        self.bar.update(self.task, advance=count, rate=f"{rate:,.0f}/s")


@contextmanager
def _progress(enabled: bool) -> Iterator[_RatedBar | None]:
    """Shown only when stderr is a terminal, never on a pipe."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("messages"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        yield _RatedBar(bar)


def _emit(report: Report, fmt: str) -> None:
    if fmt == "json":
        click.echo(dumps(report))
    else:
        # Piped output gets a readable fixed width instead of rich's 80-column default.
        render_table(report, Console(width=None if sys.stdout.isatty() else 120))
    render_errors(report, lambda line: click.echo(line, err=True))


def _local_jobs(
    mbox: Sequence[str],
    maildir: str | None,
    addresses: Sequence[str],
    sent: Sequence[str],
    window: timedelta | None,
) -> list[tuple[AccountPlan, SourceFactory]]:
    if not addresses:
        raise UsageError("--mbox/--maildir need --address (your own address, repeatable)")
    plan = AccountPlan(
        name="local",
        addresses=tuple(addresses),
        folders=None,
        sent_folders=tuple(sent),
        window=window or timedelta(hours=24),
        lookback=timedelta(days=30),
        policy=Policy(),
    )

    def factory() -> MailSource:
        return LocalSource([Path(p) for p in mbox], Path(maildir) if maildir else None)

    return [(plan, factory)]


def _demo_jobs(window: timedelta | None) -> list[tuple[AccountPlan, SourceFactory]]:
    base = resources.files("inboxwatch") / "demo"
    paths = [Path(str(base / "INBOX.mbox")), Path(str(base / "Sent.mbox"))]
    plan = AccountPlan(
        name="demo",
        addresses=(DEMO_ADDRESS,),
        folders=("INBOX",),
        sent_folders=(),
        window=window or timedelta(hours=24),
        lookback=timedelta(days=30),
        policy=Policy(),
    )
    return [(plan, lambda: LocalSource(paths))]


def _demo_digest() -> Digest:
    return Digest(
        to=[f"Sam Rivera <{DEMO_ADDRESS}>"],
        sender="inboxwatch <inboxwatch@studio.example>",
        timezone="Europe/Berlin",
    )


def _config_jobs(
    settings: Settings, accounts: Sequence[str], window: timedelta | None
) -> list[tuple[AccountPlan, SourceFactory]]:
    chosen = [a for a in settings.accounts if not accounts or a.name in accounts]
    unknown = set(accounts) - {a.name for a in settings.accounts}
    if unknown:
        names = ", ".join(a.name for a in settings.accounts)
        raise UsageError(f"no account named {', '.join(sorted(unknown))} (accounts: {names})")
    return [(AccountPlan.from_account(a, window), open_imap(a)) for a in chosen]


_FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
_WINDOW = click.option(
    "--window",
    callback=_duration,
    metavar="DURATION",
    help="Reply window for this run (90m, 24h, 2d, 1w).",
)


@cli.command()
@_common
@_FORMAT
@click.option("--account", "accounts", multiple=True, metavar="NAME", help="Only this account.")
@_WINDOW
@click.option(
    "--as-of",
    callback=_instant,
    metavar="TIME",
    help="Judge as if it were then (ISO 8601); later mail is ignored.",
)
@click.option("--mbox", multiple=True, metavar="PATH", help="Scan a local mbox file instead.")
@click.option("--maildir", metavar="PATH", help="Scan a local Maildir tree instead.")
@click.option(
    "--address",
    "addresses",
    multiple=True,
    metavar="ADDR",
    help="Your address, for --mbox/--maildir (repeatable).",
)
@click.option(
    "--sent-folder",
    "sent",
    multiple=True,
    metavar="NAME",
    help="Sent folder name, for --mbox/--maildir (default: discover).",
)
@click.option("--demo", is_flag=True, help="Scan the bundled demo mailbox.")
@click.pass_context
def scan(
    ctx: click.Context,
    config_path: str | None,
    verbose: int,
    quiet: int,
    fmt: str,
    accounts: Sequence[str],
    window: timedelta | None,
    as_of: datetime | None,
    mbox: Sequence[str],
    maildir: str | None,
    addresses: Sequence[str],
    sent: Sequence[str],
    demo: bool,
) -> None:
    """One-off audit: list the threads waiting longer than the window (exit 1 if any)."""
    _setup_logging(ctx, verbose, quiet)
    if demo:
        jobs, as_of = _demo_jobs(window), as_of or DEMO_AS_OF
    elif mbox or maildir:
        jobs = _local_jobs(mbox, maildir, addresses, sent, window)
    else:
        jobs = _config_jobs(load_settings(find_config(config_path)), accounts, window)
    now = datetime.now(UTC)
    with _progress(fmt == "table") as progress:
        report = run_scan(jobs, as_of or now, now, progress)
    _emit(report, fmt)
    ctx.exit(report.exit_code())


@cli.command()
@_common
@_FORMAT
@_WINDOW
@click.pass_context
def demo(
    ctx: click.Context,
    config_path: str | None,
    verbose: int,
    quiet: int,
    fmt: str,
    window: timedelta | None,
) -> None:
    """Scan the bundled demo mailbox (no account needed); exits 0 when it worked."""
    _setup_logging(ctx, verbose, quiet)
    report = run_scan(_demo_jobs(window), DEMO_AS_OF, datetime.now(UTC))
    _emit(report, fmt)
    if fmt == "table":
        click.echo(
            f"\nThis was the bundled demo mailbox of {DEMO_ADDRESS}, judged as of "
            f"{DEMO_AS_OF:%Y-%m-%d %H:%M} UTC. Point inboxwatch at your own mail with a config "
            "file (see config.example.toml) and run `inboxwatch scan`.",
            err=True,
        )
    ctx.exit(0 if report.exit_code() <= 1 else report.exit_code())


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
        click.echo(f"inboxwatch: error: {exc}", err=True)
    else:
        click.echo(f"inboxwatch: internal error: {exc!r} (run with -vv and report it)", err=True)


def run() -> None:
    sys.exit(main())


# The digest, check, run and health commands live beside; importing registers them.
from inboxwatch.cli.main import commands  # noqa: E402, F401
