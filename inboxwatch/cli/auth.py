"""`inboxwatch auth NAME [--status] [--revoke]`: the one interactive OAuth 2.0 sign-in."""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime

import click

from inboxwatch.auth.refresh import TokenSource, account_tokens, smtp_tokens, tokens_dir
from inboxwatch.auth.signin import sign_in
from inboxwatch.auth.tokens import Tokens
from inboxwatch.cli.options import common_options, load_config, setup_logging
from inboxwatch.config import Settings, smtp_identity
from inboxwatch.errors import ConfigError, SignInNeeded, UsageError


def identity(settings: Settings, name: str) -> tuple[TokenSource, str]:
    """The sign-in NAME stands for, and the username it signs in as."""
    account = next((a for a in settings.accounts if a.name == name), None)
    if account is not None:
        if account.auth != "oauth2":
            raise ConfigError(
                f'accounts[{name}] signs in with a password; set auth = "oauth2" and an '
                "[accounts.oauth2] table first (README: Gmail and Microsoft 365 sign-in)"
            )
        return account_tokens(account, tokens_dir(settings)), account.username
    if name == "smtp":
        shared = smtp_identity(settings)
        if shared is not None:
            raise UsageError(
                f"[smtp] shares the sign-in of account {shared.name}: run "
                f"`inboxwatch auth {shared.name}`"
            )
        tokens = smtp_tokens(settings)
        if tokens is None:
            raise ConfigError('smtp signs in with a password; set auth = "oauth2" first')
        return tokens, settings.smtp.username
    names = ", ".join(a.name for a in settings.accounts)
    raise UsageError(f"no account named {name} (accounts: {names}; or smtp)")


def _when(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def status_lines(name: str, source: TokenSource, tokens: Tokens) -> list[str]:
    left = tokens.expires_at - time.time()
    valid = (
        f"valid until {_when(tokens.expires_at)} ({left / 60:.0f} min left)"
        if left > 0
        else f"expired {_when(tokens.expires_at)}; renewed at the next login"
    )
    return [
        f"{name}: signed in as {tokens.signed_in_as or '(unknown)'} with {tokens.provider} "
        f"(client {tokens.client_id})",
        f"  scopes: {' '.join(tokens.scopes)}",
        f"  access token: {valid}",
        f"  signed in {_when(tokens.signed_in_at)}; last renewed {_when(tokens.refreshed_at)}",
        f"  token file: {source.file.path}",
    ]


@click.command("auth", short_help="Sign in with OAuth 2.0 once (Microsoft 365, Gmail).")
@click.argument("name")
@click.option("--status", is_flag=True, help="Who is signed in, the scopes, the token's expiry.")
@click.option("--revoke", is_flag=True, help="Forget the stored tokens.")
@common_options
@click.pass_context
def auth(
    ctx: click.Context,
    name: str,
    status: bool,
    revoke: bool,
    config_path: str | None,
    verbose: int,
    quiet: int,
) -> None:
    """Sign in with OAuth 2.0 once (Microsoft 365, Gmail): NAME is an account, or smtp.

    Works without a browser on this machine: Microsoft shows a code to enter on any
    device; Google shows an address to open anywhere, and takes the address the
    browser ends on, pasted back here. inboxwatch renews the token by itself after.
    """
    setup_logging(ctx, verbose, quiet)
    if status and revoke:
        raise UsageError("use --status or --revoke, not both")
    settings = load_config(ctx, config_path)[1]
    source, username = identity(settings, name)
    if revoke:
        gone = source.file.forget()
        click.echo(f"{name}: tokens forgotten" if gone else f"{name}: was not signed in")
        ctx.exit(0)
    if status:
        tokens = source.file.read()
        if tokens is None:
            raise SignInNeeded(f"{name}: not signed in; run `inboxwatch auth {name}`")
        for line in status_lines(name, source, tokens):
            click.echo(line)
        if tokens.ended:
            raise SignInNeeded(f"{name}: {tokens.ended}")
        ctx.exit(0)
    tokens = sign_in(source, username, click.echo, sys.stdin.readline)
    mode = oct(os.stat(source.file.path).st_mode & 0o777)[2:]
    click.echo(
        f"{name}: signed in as {tokens.signed_in_as}; tokens kept in {source.file.path} "
        f"(mode {mode}) and renewed by inboxwatch from now on"
    )
