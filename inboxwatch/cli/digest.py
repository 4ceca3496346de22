"""`inboxwatch digest`: scan, render the digest and send it now (or print it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

import click

from inboxwatch.auth.refresh import smtp_tokens
from inboxwatch.cli.common import DEMO_AS_OF, config_scan, demo_digest, demo_jobs, progress_bar
from inboxwatch.cli.options import common_options, load_config, setup_logging
from inboxwatch.cli.output import render_errors
from inboxwatch.cli.snooze import held
from inboxwatch.config import Account, Settings
from inboxwatch.core.model import Report
from inboxwatch.core.ports import Sender
from inboxwatch.core.scan import run_scan
from inboxwatch.delivery.digest import digest_message
from inboxwatch.delivery.smtp import SmtpSender, StdoutSender
from inboxwatch.errors import ConfigError, UsageError
from inboxwatch.service.ledger import DigestGroup, digest_groups, each_delivered, notify_groups


def _send(
    group: DigestGroup, report: Report, now: datetime, configs: Sequence[Account], sender: Sender
) -> None:
    message = digest_message(group.part(report), group.config, now, configs)
    if message is None:
        click.echo(
            f"inboxwatch: nobody is waiting; no digest sent to {group.recipients} "
            "(digest.send_when_empty = false)",
            err=True,
        )
        return
    (group.sender or sender).send(message)
    if not isinstance(sender, StdoutSender):
        click.echo(f"inboxwatch: digest sent to {group.recipients}", err=True)


def _groups(settings: Settings, accounts: Sequence[str], dry_run: bool) -> list[DigestGroup]:
    """Every digest the config asks for; a dry run prints each, Apprise's ones included."""
    chosen = [a for a in settings.accounts if not accounts or a.name in accounts]
    notify = notify_groups(settings.digest, chosen)
    if dry_run:
        notify = [replace(group, sender=None) for group in notify]
    groups = digest_groups(settings.digest, chosen, settings.team_digests()) + notify
    if not groups:
        raise ConfigError(
            "digest.to is not set (nor any account's digest_to, nor digest.notify): "
            "who should receive it?"
        )
    return groups


@click.command(short_help="Scan and send (or print) the digest now.")
@common_options
@click.option("--dry-run", is_flag=True, help="Print the complete e-mail instead of sending it.")
@click.option("--account", "accounts", multiple=True, metavar="NAME", help="Only this account.")
@click.option("--demo", is_flag=True, help="The bundled demo mailbox's digest (with --dry-run).")
@click.pass_context
def digest(
    ctx: click.Context,
    config_path: str | None,
    verbose: int,
    quiet: int,
    dry_run: bool,
    accounts: Sequence[str],
    demo: bool,
) -> None:
    """Scan, render the digest and send it now (exit 6 if it cannot be delivered)."""
    setup_logging(ctx, verbose, quiet)
    if demo and not dry_run:
        raise UsageError("the demo digest can only be printed: add --dry-run")
    now = datetime.now(UTC)
    sender: Sender = StdoutSender()
    if demo:
        now = DEMO_AS_OF
        groups, configs = [DigestGroup(demo_digest(), ("demo",), "")], []
    else:
        settings = load_config(ctx, config_path)[1]
        configs = settings.accounts
        groups = _groups(settings, accounts, dry_run)
        if not dry_run and any(group.sender is None for group in groups):
            # Before scanning: a config error fails fast.
            sender = SmtpSender(settings.smtp, tokens=smtp_tokens(settings))
    with progress_bar(not dry_run) as progress:
        if demo:
            report = run_scan(demo_jobs(), now, now, progress)
        else:
            report = config_scan(settings, accounts, (now, now), progress)
    if not demo:
        report = held(report, settings, now)
    render_errors(report, lambda line: click.echo(line, err=True))
    each_delivered(groups, lambda group: _send(group, report, now, configs, sender))
    code = report.exit_code()  # an account that failed still fails the run, after the digest
    ctx.exit(code if code > 1 else 0)
