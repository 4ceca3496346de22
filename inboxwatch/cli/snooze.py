"""`snooze`, `mute`, `unsnooze`, `snoozed`: "not now" and "never for this thread", kept in
the state database (store/notes.py); the mailbox is never touched. A new message in the
thread brings it back (core/snooze.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import click

from inboxwatch.cli.common import config_scan, parse_instant
from inboxwatch.cli.options import common_options, load_config, setup_logging
from inboxwatch.config import Settings
from inboxwatch.core.model import Report, as_message_id
from inboxwatch.core.reminders import shown_of
from inboxwatch.core.snooze import Snooze, find, snooze_of
from inboxwatch.errors import UsageError
from inboxwatch.store import beside, notes


def held(report: Report, settings: Settings, now: datetime) -> Report:
    """`report` without what the user snoozed or muted, and with how many of the service's
    digests listed each thread (`scan`, `digest`)."""
    state = settings.state
    return shown_of(beside.snoozes(state), beside.digests_seen(state), now, report)


def _note(
    ctx: click.Context,
    options: tuple[str | None, int, int],
    message_id: str,
    until: datetime | None,
) -> Snooze:
    """Scan, find the waiting thread holding `message_id`, and keep the note."""
    config_path, verbose, quiet = options
    setup_logging(ctx, verbose, quiet)
    settings = load_config(ctx, config_path)[1]
    now = datetime.now(UTC)
    if until is not None and until <= now:
        raise UsageError(f"--until {until:%Y-%m-%d %H:%M} UTC has passed")
    with beside.cache_beside(settings.state) as cache:  # what the service's polls read
        report = config_scan(settings, [], (now, now), cache=cache)
    finding = find(report, message_id)
    if finding is None:
        raise UsageError(
            f"no thread waiting for your reply holds {message_id} "
            "(`inboxwatch scan --format json` lists each thread's message_ids)"
        )
    note = snooze_of(finding, message_id, until, now)
    beside.write_beside(settings.state, lambda db: notes.insert(db, note))
    return note


@click.command(short_help="Hide a waiting thread until a date.")
@click.argument("message_id", metavar="MESSAGE-ID")
@click.option(
    "--until", required=True, callback=parse_instant, metavar="DATE", help="ISO 8601 date."
)
@common_options
@click.pass_context
def snooze(
    ctx: click.Context,
    message_id: str,
    until: datetime,
    config_path: str | None,
    verbose: int,
    quiet: int,
) -> None:
    """Hide the thread holding MESSAGE-ID until DATE; a new message in it brings it back."""
    note = _note(ctx, (config_path, verbose, quiet), message_id, until)
    click.echo(f"snoozed until {until:%Y-%m-%d %H:%M} UTC: {note.subject}")


@click.command(short_help="Never remind of a thread again (until a new message).")
@click.argument("message_id", metavar="MESSAGE-ID")
@common_options
@click.pass_context
def mute(
    ctx: click.Context, message_id: str, config_path: str | None, verbose: int, quiet: int
) -> None:
    """Never remind of the thread holding MESSAGE-ID, unless a new message arrives in it."""
    note = _note(ctx, (config_path, verbose, quiet), message_id, None)
    click.echo(f"muted: {note.subject}")


@click.command(short_help="Undo a snooze or mute.")
@click.argument("message_id", metavar="MESSAGE-ID")
@common_options
@click.pass_context
def unsnooze(
    ctx: click.Context, message_id: str, config_path: str | None, verbose: int, quiet: int
) -> None:
    """Show the thread holding MESSAGE-ID again."""
    setup_logging(ctx, verbose, quiet)
    settings = load_config(ctx, config_path)[1]
    wanted = as_message_id(message_id)
    gone = beside.write_beside(
        settings.state,
        lambda db: notes.delete(db, message_id) or notes.delete(db, wanted),
    )
    click.echo(f"{message_id}: shown again" if gone else f"{message_id}: was not snoozed or muted")


@click.command(short_help="List snoozed and muted threads.")
@common_options
@click.pass_context
def snoozed(ctx: click.Context, config_path: str | None, verbose: int, quiet: int) -> None:
    """The snoozed and muted threads, oldest note first."""
    setup_logging(ctx, verbose, quiet)
    settings = load_config(ctx, config_path)[1]
    now = datetime.now(UTC)
    for line in describe(beside.snoozes(settings.state), now):
        click.echo(line)


def describe(found: Sequence[Snooze], now: datetime) -> list[str]:
    if not found:
        return ["nothing is snoozed or muted"]
    lines = []
    for note in found:
        if note.until is None:
            state = "muted"
        elif note.until > now:
            state = f"until {note.until:%Y-%m-%d %H:%M} UTC"
        else:
            state = "snooze ended"
        lines.append(f"{note.account}  {state}  {note.subject}  {note.message_id}")
    return lines
