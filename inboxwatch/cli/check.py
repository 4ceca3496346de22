"""`inboxwatch check`: validate the config, log in everywhere, send nothing, change nothing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import click

from inboxwatch.auth.refresh import smtp_tokens, tokens_dir
from inboxwatch.cli.options import common_options, load_config, setup_logging
from inboxwatch.config import Account, Settings, masked_json
from inboxwatch.core.fanout import side_by_side
from inboxwatch.core.ports import FolderInfo, discover_sent
from inboxwatch.core.scan import special_use
from inboxwatch.delivery.smtp import SmtpSender
from inboxwatch.errors import ConfigError, InboxwatchError
from inboxwatch.imap.opener import open_imap
from inboxwatch.imap.slots import ServerSlots, server

Echo = Callable[[str], None]


def sent_found(folders: Sequence[FolderInfo]) -> tuple[list[str], bool]:
    """The sent folders a scan will read, and whether the server marked them (SPECIAL-USE
    `\\Sent`, RFC 6154) rather than their usual name naming them."""
    found = discover_sent(folders)
    return found, any("\\Sent" in f.special_use for f in folders if f.name in found)


def check_account(account: Account, tokens: Path) -> str:
    """Log in, list folders, find the sent folder; raises InboxwatchError on trouble."""
    source = open_imap(account, tokens)()
    try:
        folders = source.list_folders()
        offered, compressed = source.compression()
    finally:
        source.close()
    names = {f.name for f in folders}
    watched = [special_use(f, folders) for f in account.folders]
    missing = [f for f in [*watched, *account.sent_folders] if f not in names]
    if missing:
        raise ConfigError(
            f"folder {', '.join(map(repr, missing))} not found "
            f"(folders on the server: {', '.join(sorted(names)[:12])})"
        )
    if account.sent_folders:
        sent = f"{', '.join(account.sent_folders)} (configured)"
    else:
        found, marked = sent_found(folders)
        if not found:
            raise ConfigError(f"no sent folder found; set accounts[{account.name}].sent_folders")
        how = "SPECIAL-USE \\Sent" if marked else "usual name"
        sent = f"{', '.join(found)} ({how})"
    how = " with OAuth 2.0" if account.auth == "oauth2" else ""
    return (
        f"logged in to {account.host}:{account.port} ({account.security}) as "
        f"{account.username}{how}; watching {', '.join(watched)}; sent folder {sent}"
        + _compression(account, offered, compressed)
    )


def _compression(account: Account, offered: bool, compressed: bool) -> str:
    """What `compress` does on this server, where it matters (README: a slow link)."""
    if compressed:
        return "; compressed (COMPRESS=DEFLATE)"
    if account.compress:
        return "; the server does not offer COMPRESS=DEFLATE, so compress = true does nothing"
    if offered:
        return "; the server offers COMPRESS=DEFLATE (compress = true helps on a slow link)"
    return ""


def check_smtp(settings: Settings) -> str:
    smtp = settings.smtp
    client = SmtpSender(smtp, tokens=smtp_tokens(settings)).open()
    client.quit()
    who = f" as {smtp.username}" if smtp.username else " without AUTH"
    return f"connected to {smtp.host}:{smtp.port} ({smtp.security}){who}; nothing sent"


def run_check(settings: Settings, path: Path | None, echo: Echo) -> int:
    """Print what was checked, one line each; return the most serious exit code."""
    echo(f"config {path or 'from the environment (INBOXWATCH_*)'}: valid")
    echo("effective config (secrets masked):")
    echo(masked_json(settings))
    codes = [0]
    slots = ServerSlots(settings.max_per_server)
    steps: list[tuple[str, Callable[[], str]]] = [
        (f"account {a.name}", partial(_within, slots, a, tokens_dir(settings)))
        for a in settings.accounts
    ]
    if settings.smtp.host:
        steps.append(("smtp", lambda: check_smtp(settings)))
    else:
        echo("- smtp: not configured (the digest needs [smtp] host)")
    # Side by side (max_parallel, as a poll reads them): 300 accounts behind a slow link
    # would take minutes one after the other. The lines still come in the config's order.
    for line, code in side_by_side(settings.max_parallel, _attempt, steps, "check"):
        echo(line)
        codes.append(code)
    for host, count in crowded(settings.accounts, settings.max_per_server).items():
        echo(
            f"note: {count} accounts on {host} share max_per_server = "
            f"{settings.max_per_server} connections, so a running service logs some of "
            "them in again at each poll; raise max_per_server if the server allows more"
        )
    return max(codes)


def crowded(accounts: Sequence[Account], cap: int) -> dict[str, int]:
    """Hosts with more accounts than connections allowed to them (the service keeps one
    session an account between polls, and only `cap` fit: service.sessions)."""
    counts = Counter(server(a.host) for a in accounts)
    return {host: n for host, n in counts.items() if n > cap}


def _within(slots: ServerSlots, account: Account, tokens: Path) -> str:
    with slots.hold(account.host):
        return check_account(account, tokens)


def _attempt(step: tuple[str, Callable[[], str]]) -> tuple[str, int]:
    label, run = step
    try:
        return f"ok {label}: {run()}", 0
    except InboxwatchError as exc:
        return f"FAILED {label}: {exc}", exc.exit_code


@click.command(short_help="Check the config; log in everywhere, send nothing.")
@common_options
@click.pass_context
def check(ctx: click.Context, config_path: str | None, verbose: int, quiet: int) -> None:
    """Validate the config, log in to every account and the SMTP server; send nothing."""
    setup_logging(ctx, verbose, quiet)
    path, settings = load_config(ctx, config_path)
    ctx.exit(run_check(settings, path, click.echo))
