"""The digest, check, run and health commands (registered on `cli.cli`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import click

from inboxwatch.core.scan import Sender, digest_message, run_scan
from inboxwatch.cli.check import run_check
from inboxwatch.cli.main import (
    DEMO_AS_OF,
    _common,
    _config_jobs,
    _demo_digest,
    _demo_jobs,
    _progress,
    _setup_logging,
    cli,
)
from inboxwatch.config import find_config, load_settings
from inboxwatch.delivery.smtp import SmtpSender, StdoutSender
from inboxwatch.errors import ConfigError, UsageError
from inboxwatch.cli.output import render_errors


@cli.command()
@_common
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
    _setup_logging(ctx, verbose, quiet)
    if demo and not dry_run:
        raise UsageError("the demo digest can only be printed: add --dry-run")
    now = datetime.now(UTC)
    sender: Sender = StdoutSender()
    if demo:
        config, jobs, now = _demo_digest(), _demo_jobs(None), DEMO_AS_OF
    else:
        settings = load_settings(find_config(config_path))
        config, jobs = settings.digest, _config_jobs(settings, accounts, None)
        if not config.to:
            raise ConfigError("digest.to is not set: who should receive the digest?")
        if not dry_run:
            sender = SmtpSender(settings.smtp)  # before scanning: a config error fails fast
    with _progress(not dry_run) as progress:
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


@cli.command()
@_common
@click.pass_context
def check(ctx: click.Context, config_path: str | None, verbose: int, quiet: int) -> None:
    """Validate the config, log in to every account and the SMTP server; send nothing."""
    _setup_logging(ctx, verbose, quiet)
    path = find_config(config_path)
    settings = load_settings(path)
    ctx.exit(run_check(settings, path, click.echo))


@cli.command("run")
@_common
@click.option("--once", is_flag=True, help="One poll, plus the digest if due; then exit.")
@click.pass_context
def run_command(
    ctx: click.Context, config_path: str | None, verbose: int, quiet: int, once: bool
) -> None:
    """The service: poll every account, send the digest on digest.schedule."""
    from inboxwatch.service.scheduler import Service

    _setup_logging(ctx, verbose, quiet, service=True)
    settings = load_settings(find_config(config_path))
    sender: Sender = StdoutSender()  # never used without digest.to: no digest is ever due
    if not settings.digest.to:
        click.echo("inboxwatch: digest.to is not set: polling only, no digest", err=True)
    else:
        sender = SmtpSender(settings.smtp)  # smtp.host missing: a config error now, not at 08:00
    service = Service(settings, sender, keep_report=once)
    try:
        ctx.exit(service.job() if once else service.run_forever())
    finally:
        service.close()


@cli.command()
@_common
@click.pass_context
def health(ctx: click.Context, config_path: str | None, verbose: int, quiet: int) -> None:
    """Exit 0 when every account polled successfully within three poll intervals, else 1."""
    from inboxwatch.service.poller import health as judge

    _setup_logging(ctx, verbose, quiet)
    ok, reason = judge(load_settings(find_config(config_path)), datetime.now(UTC))
    click.echo(f"{'healthy' if ok else 'unhealthy'}: {reason}", err=not ok)
    ctx.exit(0 if ok else 1)
