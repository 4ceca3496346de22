"""`inboxwatch scan` and `inboxwatch demo`: the one-off audit in the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import click

from inboxwatch.cli.common import (
    AS_OF_OPTION,
    DEMO_ADDRESS,
    DEMO_AS_OF,
    FORMAT_OPTION,
    WINDOW_OPTION,
    LocalMail,
    config_scan,
    demo_jobs,
    emit,
    local_jobs,
    local_mail_options,
    parse_instant,
    parse_window,
    progress_bar,
)
from inboxwatch.cli.options import common_options, load_config, setup_logging
from inboxwatch.cli.snooze import held
from inboxwatch.core.scan import run_scan
from inboxwatch.errors import UsageError
from inboxwatch.service.plans import Overrides


@click.command(short_help="One-off audit: threads waiting past the window.")
@common_options
@FORMAT_OPTION
@click.option("--account", "accounts", multiple=True, metavar="NAME", help="Only this account.")
@WINDOW_OPTION
@AS_OF_OPTION
@local_mail_options
@click.option("--demo", is_flag=True, help="Scan the bundled demo mailbox.")
@click.option(
    "--lookback", callback=parse_window, metavar="DURATION", help="Read mail this far back."
)
@click.option(
    "--since", callback=parse_instant, metavar="DATE", help="Read mail from then on (ISO 8601)."
)
@click.option("--include-cc", is_flag=True, help="Mail that only Cc'd you expects a reply too.")
@click.option(
    "--limit", type=click.IntRange(min=1), metavar="N", help="List only the N longest waits."
)
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
    local: LocalMail,
    demo: bool,
    lookback: timedelta | None,
    since: datetime | None,
    include_cc: bool,
    limit: int | None,
) -> None:
    """One-off audit: list the threads waiting longer than the window (exit 1 if any)."""
    setup_logging(ctx, verbose, quiet)
    now = datetime.now(UTC)
    as_of = as_of or (DEMO_AS_OF if demo else now)
    overrides = _overrides(window, lookback, since, include_cc, as_of)
    settings = None
    if not demo and not local.given:
        settings = load_config(ctx, config_path)[1]
    with progress_bar(fmt == "table") as progress:
        if settings is not None:
            report = config_scan(settings, accounts, (as_of, now), progress, overrides)
        else:
            jobs = demo_jobs(overrides) if demo else local_jobs(local, overrides)
            report = run_scan(jobs, as_of, now, progress)
    if settings is not None:
        report = held(report, settings, as_of)
    emit(report, fmt, limit)
    ctx.exit(report.exit_code())


def _overrides(
    window: timedelta | None,
    lookback: timedelta | None,
    since: datetime | None,
    include_cc: bool,
    as_of: datetime,
) -> Overrides:
    """This run's plan overrides; `--since` is a lookback from `as_of`."""
    if since is not None:
        if lookback is not None:
            raise UsageError("use --since or --lookback, not both")
        if since >= as_of:
            raise UsageError(
                f"--since {since:%Y-%m-%d %H:%M} UTC is not before {as_of:%Y-%m-%d %H:%M} UTC"
            )
        lookback = as_of - since
    return Overrides(window=window, lookback=lookback, include_cc=include_cc)


@click.command(short_help="Scan the bundled demo mailbox (no account needed).")
@common_options
@FORMAT_OPTION
@WINDOW_OPTION
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
    setup_logging(ctx, verbose, quiet)
    report = run_scan(demo_jobs(Overrides(window=window)), DEMO_AS_OF, datetime.now(UTC))
    emit(report, fmt)
    if fmt == "table":
        click.echo(
            f"\nThis was the bundled demo mailbox of {DEMO_ADDRESS}, judged as of "
            f"{DEMO_AS_OF:%Y-%m-%d %H:%M} UTC. Why a thread is listed: `inboxwatch explain "
            "--demo --subject logo`. Your own mail: `inboxwatch init`, then `inboxwatch scan`.",
            err=True,
        )
    ctx.exit(0 if report.exit_code() <= 1 else report.exit_code())
