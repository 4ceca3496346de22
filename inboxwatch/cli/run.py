"""`inboxwatch run` (the service) and `inboxwatch health` (the container's check)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import click

from inboxwatch.auth.refresh import smtp_tokens
from inboxwatch.cli.options import common_options, load_config, setup_logging
from inboxwatch.config import Settings, account_password
from inboxwatch.core.ports import Sender
from inboxwatch.delivery.smtp import SmtpSender, StdoutSender

log = logging.getLogger(__name__)


def _secrets_readable(settings: Settings) -> None:
    """A password file the service cannot read (a root-owned 0600 secret in the container)
    is one line at start-up, not a failed poll every interval from then on."""
    for account in settings.accounts:
        if account.auth == "password":
            account_password(account)


@click.command("run", short_help="The service: poll, and send the digest on schedule.")
@common_options
@click.option("--once", is_flag=True, help="One poll, plus the digest if due; then exit.")
@click.pass_context
def run(ctx: click.Context, config_path: str | None, verbose: int, quiet: int, once: bool) -> None:
    """The service: poll every account, send the digest on digest.schedule."""
    from inboxwatch.service.ledger import digest_groups
    from inboxwatch.service.scheduler import Scheduler

    setup_logging(ctx, verbose, quiet, service=True)
    settings = load_config(ctx, config_path)[1]
    if not once:
        _secrets_readable(settings)
    sender: Sender = StdoutSender()  # never used without recipients: no e-mail is ever due
    if not digest_groups(settings.digest, settings.accounts, settings.team_digests()):
        if not settings.digest.notify:
            log.warning("digest.to is not set: polling only, no digest")
    else:
        # smtp.host missing: a config error now, not at 08:00.
        sender = SmtpSender(settings.smtp, tokens=smtp_tokens(settings))
    scheduler = Scheduler(settings, sender, keep_report=once)
    try:
        ctx.exit(scheduler.job() if once else scheduler.run_forever())
    finally:
        scheduler.close()


@click.command(short_help="Exit 0 when every account was polled lately.")
@common_options
@click.pass_context
def health(ctx: click.Context, config_path: str | None, verbose: int, quiet: int) -> None:
    """Exit 0 when every account polled successfully within three poll intervals, else 1."""
    from inboxwatch.service.health import health as judge

    setup_logging(ctx, verbose, quiet)
    ok, reason = judge(load_config(ctx, config_path)[1], datetime.now(UTC))
    click.echo(f"{'healthy' if ok else 'unhealthy'}: {reason}", err=not ok)
    ctx.exit(0 if ok else 1)


@click.command(short_help="Check the state file; set a damaged one aside.")
@common_options
@click.option(
    "--accept-resend",
    is_flag=True,
    help="After a lost digest ledger: send digests again (one period's may arrive twice).",
)
@click.pass_context
def repair(
    ctx: click.Context, config_path: str | None, verbose: int, quiet: int, accept_resend: bool
) -> None:
    """Check the state file; set a damaged one aside and start a new one (the cache is
    rebuilt from the mailbox at the next poll). Stop the service first."""
    from inboxwatch.store.beside import open_store

    setup_logging(ctx, verbose, quiet)
    settings = load_config(ctx, config_path)[1]
    store = open_store(settings.state)  # checks; a damaged file is set aside and recovered
    try:
        click.echo(store.recovered or f"{store.where()}: ok")
        lost = store.ledger_lost()
        if lost is not None and accept_resend:
            store.accept_resend()
            click.echo("digests will be sent again; the next one may repeat a period's digest")
        elif lost is not None:
            click.echo(
                f"digests are held back: the digest ledger was lost with {lost}; run "
                "`inboxwatch repair --accept-resend` to send them again",
                err=True,
            )
            ctx.exit(3)
    finally:
        store.close()
