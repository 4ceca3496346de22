"""`inboxwatch digest`: scan, render the digest and send it now (or print it)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import click

from inboxwatch.auth.refresh import smtp_tokens
from inboxwatch.cli.common import (
    DEMO_AS_OF,
    common_options,
    config_jobs,
    demo_digest,
    demo_jobs,
    load_config,
    progress_bar,
    setup_logging,
)
from inboxwatch.cli.output import render_errors
from inboxwatch.core.ports import Sender
from inboxwatch.core.scan import run_scan
from inboxwatch.delivery.digest import digest_message
from inboxwatch.delivery.smtp import SmtpSender, StdoutSender
from inboxwatch.errors import ConfigError, UsageError


@click.command()
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
        config, jobs, now = demo_digest(), demo_jobs(), DEMO_AS_OF
    else:
        settings = load_config(ctx, config_path)[1]
        config, jobs = settings.digest, config_jobs(settings, accounts)
        if not config.to:
            raise ConfigError("digest.to is not set: who should receive the digest?")
        if not dry_run:
            # Before scanning: a config error fails fast.
            sender = SmtpSender(settings.smtp, tokens=smtp_tokens(settings))
    with progress_bar(not dry_run) as progress:
        report = run_scan(jobs, now, now, progress)
    render_errors(report, lambda line: click.echo(line, err=True))
    message = digest_message(report, config, now)
    if message is None:
        click.echo(
            "inboxwatch: nobody is waiting; no digest sent (digest.send_when_empty = false)",
            err=True,
        )
    else:
        sender.send(message)
        if not dry_run:
            click.echo(f"inboxwatch: digest sent to {message['To']}", err=True)
    code = report.exit_code()  # an account that failed still fails the run, after the digest
    ctx.exit(code if code > 1 else 0)
