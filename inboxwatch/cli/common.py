"""What every command shares: options, logging, the progress bar, output, and the jobs
(plan + source) a command scans: from the config, local mail or the bundled demo."""

from __future__ import annotations

import dataclasses
import functools
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

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

from inboxwatch.auth.refresh import tokens_dir
from inboxwatch.cli.csvout import report_csv
from inboxwatch.cli.output import render_errors, render_table, write_json
from inboxwatch.config import Digest, Settings
from inboxwatch.core import ports
from inboxwatch.core.model import Report
from inboxwatch.core.ports import MailSource
from inboxwatch.core.scan import AccountPlan, SourceFactory, run_scan
from inboxwatch.durations import parse_duration
from inboxwatch.errors import UsageError
from inboxwatch.imap.opener import open_imap
from inboxwatch.imap.slots import ServerSlots
from inboxwatch.local.source import LocalSource
from inboxwatch.service.plans import NO_OVERRIDES, Overrides, local_plan, plan_of
from inboxwatch.service.reuse import through_cache

DEMO_AS_OF = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
DEMO_ADDRESS = "sam@studio.example"


def parse_window(ctx: click.Context, param: click.Parameter, value: str | None) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def parse_instant(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time (2026-11-20T17:00:00Z)"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class RatedBar:
    """A folder's messages fetched of its count, and the overall rate, on a terminal's
    stderr. Each folder gets the bar afresh: a total that grew as folders were found
    made the bar jump back."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.task = bar.add_task("reading mail", total=0, rate="")
        self.started = time.monotonic()
        self.done = 0
        self.folders = 0

        self.lock = threading.Lock()  # accounts are read side by side (max_parallel)

    def expect(self, count: int) -> None:
        with self.lock:
            self.folders += 1
            what = f"reading folder {self.folders}"
            self.bar.update(self.task, total=count, completed=0, description=what)

    def advance(self, count: int) -> None:
        with self.lock:
            self.done += count
            rate = self.done / max(time.monotonic() - self.started, 1e-6)
            self.bar.update(self.task, advance=count, rate=f"{rate:,.0f}/s")


@contextmanager
def progress_bar(enabled: bool) -> Iterator[RatedBar | None]:
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
        yield RatedBar(bar)


def emit(report: Report, fmt: str, limit: int | None = None) -> None:
    """The report to stdout; `limit`: only the longest-waiting N (the exit code and the
    statistics stay those of the whole report)."""
    shown = report
    if limit is not None and len(report.overdue) > limit:
        shown = dataclasses.replace(report, overdue=report.overdue[:limit])
        click.echo(f"inboxwatch: {len(report.overdue) - limit} more not shown (--limit)", err=True)
    if fmt == "json":
        write_json(shown, sys.stdout)
    elif fmt == "csv":
        click.echo(report_csv(shown), nl=False)
    else:
        # Piped output gets a readable fixed width instead of rich's 80-column default.
        render_table(shown, Console(width=None if sys.stdout.isatty() else 120))
    render_errors(report, lambda line: click.echo(line, err=True))


AS_OF_OPTION = click.option(
    "--as-of",
    callback=parse_instant,
    metavar="TIME",
    help="Judge as if it were then (ISO 8601); later mail is ignored.",
)


def local_mail_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--mbox, --maildir, --eml, --address, --sent-folder: mail on disk instead of IMAP,
    handed to the command as one `local: LocalMail`."""

    @functools.wraps(func)
    def packed(*args: Any, **kw: Any) -> Any:
        names = ("mbox", "maildir", "emls", "addresses", "sent")
        kw["local"] = LocalMail(*(kw.pop(name) for name in names))
        return func(*args, **kw)

    for option in reversed(_LOCAL_OPTIONS):
        packed = option(packed)
    return packed


_LOCAL_OPTIONS = (
    click.option("--mbox", multiple=True, metavar="PATH", help="Scan a local mbox file instead."),
    click.option("--maildir", metavar="PATH", help="Scan a local Maildir tree instead."),
    click.option(
        "--eml",
        "emls",
        multiple=True,
        metavar="DIR",
        help="Scan a folder of .eml files instead (repeatable; the folder's name is its name).",
    ),
    click.option(
        "--address",
        "addresses",
        multiple=True,
        metavar="ADDR",
        help="Your address, for --mbox/--maildir/--eml (repeatable).",
    ),
    click.option(
        "--sent-folder",
        "sent",
        multiple=True,
        metavar="NAME",
        help="Sent folder name, for --mbox/--maildir/--eml (default: discover).",
    ),
)


class LocalMail(NamedTuple):
    """Mail on disk, as `scan` or `explain` was given it."""

    mbox: Sequence[str]
    maildir: str | None
    emls: Sequence[str]
    addresses: Sequence[str]
    sent: Sequence[str]

    @property
    def given(self) -> bool:
        return bool(self.mbox or self.maildir or self.emls)


def local_jobs(mail: LocalMail, overrides: Overrides) -> list[tuple[AccountPlan, SourceFactory]]:
    if not mail.addresses:
        raise UsageError("--mbox/--maildir/--eml need --address (your own address, repeatable)")
    plan = local_plan("local", mail.addresses, None, mail.sent, overrides)

    def factory() -> MailSource:
        return LocalSource(
            [Path(p) for p in mail.mbox],
            Path(mail.maildir) if mail.maildir else None,
            [Path(p) for p in mail.emls],
        )

    return [(plan, factory)]


def demo_jobs(overrides: Overrides = NO_OVERRIDES) -> list[tuple[AccountPlan, SourceFactory]]:
    base = resources.files("inboxwatch") / "demo"
    paths = [Path(str(base / "INBOX.mbox")), Path(str(base / "Sent.mbox"))]
    plan = local_plan("demo", (DEMO_ADDRESS,), ("INBOX",), (), overrides)
    return [(plan, lambda: LocalSource(paths))]


def demo_digest() -> Digest:
    return Digest(
        to=[f"Sam Rivera <{DEMO_ADDRESS}>"],
        sender="inboxwatch <inboxwatch@studio.example>",
        timezone="Europe/Berlin",
    )


def config_jobs(
    settings: Settings,
    accounts: Sequence[str],
    overrides: Overrides = NO_OVERRIDES,
    slots: ServerSlots | None = None,
) -> list[tuple[AccountPlan, SourceFactory]]:
    chosen = [a for a in settings.accounts if not accounts or a.name in accounts]
    unknown = set(accounts) - {a.name for a in settings.accounts}
    if unknown:
        names = ", ".join(a.name for a in settings.accounts)
        raise UsageError(f"no account named {', '.join(sorted(unknown))} (accounts: {names})")
    tokens = tokens_dir(settings)
    return [(plan_of(a, overrides), open_imap(a, tokens, slots)) for a in chosen]


def config_scan(
    settings: Settings,
    accounts: Sequence[str],
    when: tuple[datetime, datetime],
    progress: ports.Progress | None = None,
    overrides: Overrides = NO_OVERRIDES,
    cache: ports.StateStore | None = None,
) -> Report:
    """The config's `accounts` (all if none) scanned as of `when` (as_of, generated_at):
    `max_parallel` at once, at most `max_per_server` connections to each server. With
    the service's `cache`, an account it holds is read through it (service/reuse.py)."""
    slots = ServerSlots(settings.max_per_server)
    hosts = {a.name: a.host for a in settings.accounts}
    jobs = config_jobs(settings, accounts, overrides, slots)
    if cache is not None:
        jobs = through_cache(jobs, settings, cache, when[0], slots)
    return run_scan(
        jobs,
        *when,
        progress,
        parallel=settings.max_parallel,
        gate=lambda name: slots.hold(hosts[name]),
    )


FORMAT_OPTION = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="Output format.",
)
WINDOW_OPTION = click.option(
    "--window",
    callback=parse_window,
    metavar="DURATION",
    help="Reply window for this run (90m, 24h, 2d, 1w).",
)
