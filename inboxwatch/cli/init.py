"""`inboxwatch init`: from an e-mail address to a working, commented config.toml.

Finds the servers (setup.discover), keeps the password in a 0600 file of its own (or
signs in with OAuth where the provider wants that), logs in read-only, finds the sent
folder by SPECIAL-USE, shows the last 7 days as `scan` would, and only then writes
the config. `--non-interactive` takes everything from flags, for scripts.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from inboxwatch.auth.refresh import tokens_dir
from inboxwatch.auth.signin import sign_in
from inboxwatch.cli.auth import identity
from inboxwatch.cli.check import check_smtp, sent_found
from inboxwatch.cli.common import config_jobs, emit
from inboxwatch.cli.options import common_options, setup_logging
from inboxwatch.config import IMAP_PORTS, SMTP_PORTS, Settings, load_settings, user_config_path
from inboxwatch.core.scan import run_scan
from inboxwatch.errors import ConfigError, InboxwatchError, UsageError
from inboxwatch.imap.opener import open_imap
from inboxwatch.secretfiles import write_atomically
from inboxwatch.service.plans import Overrides
from inboxwatch.setup.configfile import Answers, render
from inboxwatch.setup.discover import Found, Security, Server, discover

PREVIEW = timedelta(days=7)
SECURITY = click.Choice(["tls", "starttls", "plain"])


class Asker:
    """Prompts, or (non-interactive) the error that names the missing flag."""

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive

    def __call__(self, text: str, flag: str, default: Any = None, **kw: Any) -> Any:
        if not self.interactive:
            if default is not None:
                return default
            raise UsageError(f"{flag} is needed with --non-interactive")
        return click.prompt(text, default=default, **kw)


def local_timezone() -> str:
    """The machine's IANA zone (for the digest's schedule), else UTC."""
    name = os.environ.get("TZ", "").lstrip(":")
    if not name and Path("/etc/timezone").is_file():
        name = Path("/etc/timezone").read_text(encoding="utf-8").strip()
    if not name:
        target = os.path.realpath("/etc/localtime")
        name = target.partition("/zoneinfo/")[2]
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        return "UTC"
    return name or "UTC"


def _servers(email: str, opts: dict[str, Any], ask: Asker) -> Found:
    """Flags win; else discovery; else (interactive) the user says."""
    found = None
    if not opts["imap_host"]:
        found = discover(email, offline=opts["offline"], autoconfig=opts["autoconfig"] or "")
    if found is None:
        if not opts["imap_host"] and ask.interactive:
            click.echo("No server found for that address; your provider's help pages name it.")
        host = opts["imap_host"] or ask("IMAP server", "--imap-host")
        security: Security = opts["imap_security"] or "tls"
        port = opts["imap_port"] or IMAP_PORTS[security]
        found = Found(Server(host, port, security), None, "given")
    smtp = found.smtp
    if opts["smtp_host"]:
        smtp_security: Security = opts["smtp_security"] or "starttls"
        port = opts["smtp_port"] or SMTP_PORTS[smtp_security]
        smtp = Server(opts["smtp_host"], port, smtp_security)
    return Found(found.imap, smtp, found.source, found.username, found.oauth2, found.open_url)


def _password_file(answers: Answers, given: str | None, target: Path, ask: Asker) -> str:
    """The file the password is read from: the one given, or one init writes (0600)."""
    if given:
        if not Path(given).expanduser().is_file():
            raise ConfigError(f"--password-file {given} does not exist")
        return given
    password = ask(f"Password for {answers.username}", "--password-file", hide_input=True)
    path = target.parent / f"{answers.name}.password"
    try:
        write_atomically(path, password + "\n")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    click.echo(f"Password kept in {path} (mode 0600); the config names that file.")
    return str(path)


def _login(settings: Settings) -> list[str]:
    """Log in read-only and list the folders; the sent folders SPECIAL-USE marks."""
    account = settings.accounts[0]
    source = open_imap(account, tokens_dir(settings))()
    try:
        folders = source.list_folders()
    finally:
        source.close()
    found, marked = sent_found(folders)
    how = "marked \\Sent" if marked else ("by its usual name" if found else "none found")
    click.echo(f"Logged in read-only; {len(folders)} folders; sent folder: {found or how} ({how})")
    return found if marked else []


def _preview(settings: Settings) -> None:
    now = datetime.now(UTC)
    jobs = config_jobs(settings, [], Overrides(lookback=PREVIEW))
    click.echo("The last 7 days, as `inboxwatch scan` will judge them:")
    emit(run_scan(jobs, now, now), "table")


@click.command("init", short_help="Set up a mailbox: find servers, preview, write config.")
@common_options
@click.option("--email", metavar="ADDR", help="Your e-mail address.")
@click.option("--name", metavar="NAME", help="The account's name (default: from the domain).")
@click.option("--username", metavar="USER", help="Login name (default: the server's rule).")
@click.option("--password-file", metavar="PATH", help="A file holding the password.")
@click.option("--oauth2-client-id", metavar="ID", help="Google/Microsoft: sign in with OAuth.")
@click.option("--imap-host", metavar="HOST", help="The IMAP server (skips discovery).")
@click.option("--imap-port", type=click.IntRange(1, 65535), metavar="PORT")
@click.option("--imap-security", type=SECURITY)
@click.option("--smtp-host", metavar="HOST", help="The SMTP server for the digest.")
@click.option("--smtp-port", type=click.IntRange(1, 65535), metavar="PORT")
@click.option("--smtp-security", type=SECURITY)
@click.option("--autoconfig", metavar="URL", help="Ask this autoconfig URL first.")
@click.option("--offline", is_flag=True, help="No network lookups: the built-in table only.")
@click.option(
    "--timezone", metavar="ZONE", help="The digest's time zone (default: this machine's)."
)
@click.option("--no-preview", is_flag=True, help="Skip the login check and 7-day preview.")
@click.option("--force", is_flag=True, help="Replace an existing config file.")
@click.option("--non-interactive", is_flag=True, help="Ask nothing; flags or an error.")
@click.pass_context
def init(
    ctx: click.Context, /, config_path: str | None, verbose: int, quiet: int, **opts: Any
) -> None:
    """Set up inboxwatch for one mailbox: find its servers, log in read-only, preview the
    last 7 days, and write a commented config.toml (`--config -`: print it instead, the
    rest on stderr; for a container, with --password-file /run/secrets/...)."""
    setup_logging(ctx, verbose, quiet)
    explicit = config_path or ctx.find_root().meta.get("config")
    if explicit == "-":  # the config to stdout; everything else (prompts too) to stderr
        if not opts["password_file"] and not opts["oauth2_client_id"]:
            raise UsageError("--config - needs --password-file (init keeps no file then)")
        real_stdout = sys.stdout
        with tempfile.TemporaryDirectory() as scratch, contextlib.redirect_stdout(sys.stderr):
            text = _setup(Path(scratch) / "config.toml", opts, write=False)
        real_stdout.write(text)
        return
    target = Path(explicit).expanduser() if explicit else user_config_path()
    if target.exists() and not opts["force"]:
        raise ConfigError(f"{target} exists; --force replaces it (or pass --config NEW.toml)")
    _setup(target, opts, write=True)


def _setup(target: Path, opts: dict[str, Any], write: bool) -> str:
    """Ask, find, check, preview; write the config to `target` when `write`. Its text."""
    ask = Asker(not opts["non_interactive"])
    answers = _answers(opts, ask)
    if not answers.oauth2:
        answers.password_file = _password_file(answers, opts["password_file"], target, ask)
    text = render(answers)
    settings = _settings(text, target)
    if not opts["no_preview"] and not answers.oauth2:
        answers.sent_folders = _login(settings)
        _smtp(settings)
        text = render(answers)
        _preview(_settings(text, target))
    if not write:
        return text
    _write(target, text)
    if answers.oauth2 and ask.interactive:
        _sign_in(load_settings(target), answers.name)
    _next_steps(answers, target)
    return text


def _smtp(settings: Settings) -> None:
    """Log in to SMTP too; trouble there is said, not fatal: the digest can wait for it."""
    if not settings.smtp.host:
        return
    try:
        click.echo(check_smtp(settings))
    except InboxwatchError as exc:
        click.echo(f"SMTP: {exc} (the digest fails until this is fixed: inboxwatch check)")


def _sign_in(settings: Settings, name: str) -> None:
    """OAuth: the sign-in now (as `inboxwatch auth NAME`), then the read-only login."""
    source, username = identity(settings, name)
    tokens = sign_in(source, username, click.echo, sys.stdin.readline)
    click.echo(f"Signed in as {tokens.signed_in_as}")
    _login(settings)
    _preview(settings)


def _answers(opts: dict[str, Any], ask: Asker) -> Answers:
    email = opts["email"] or ask("Your e-mail address", "--email")
    if "@" not in email:
        raise UsageError(f"{email!r} is not an e-mail address")
    found = _servers(email, opts, ask)
    where = f"{found.imap.host}:{found.imap.port} ({found.imap.security})"
    click.echo(f"IMAP {where}, found in the {found.source}")
    domain = email.rpartition("@")[2]
    name = opts["name"] or domain.split(".")[0].lower() or "mail"
    oauth2, client_id = "", ""
    if found.oauth2 and (opts["oauth2_client_id"] or ask.interactive):
        client_id = opts["oauth2_client_id"] or ask(
            f"{found.oauth2.title()} sign-in: your app's client id (README: OAuth 2.0; "
            "empty: use an app password)",
            "--oauth2-client-id",
            default="",
            show_default=False,
        )
        oauth2 = found.oauth2 if client_id else ""
    return Answers(
        name=name,
        email=email,
        username=opts["username"] or found.login_name(email),
        imap=found.imap,
        smtp=found.smtp,
        oauth2=oauth2,
        client_id=client_id,
        open_url=found.open_url,
        timezone=opts["timezone"] or local_timezone(),
        source=f"found in the {found.source}",
    )


def _settings(text: str, target: Path) -> Settings:
    """The config as it will be read: written beside the target first, so relative paths
    and validation are exactly those of the real file."""
    trial = target.with_name(f".{target.name}.init")
    try:
        write_atomically(trial, text, 0o644)
        return load_settings(trial)
    except OSError as exc:
        raise ConfigError(f"cannot write {target}: {exc.strerror}") from None
    finally:
        trial.unlink(missing_ok=True)


def _write(target: Path, text: str) -> None:
    try:
        write_atomically(target, text, 0o644)  # no secret in it; the container must read it
    except OSError as exc:
        raise ConfigError(f"cannot write {target}: {exc.strerror}") from None
    click.echo(f"Wrote {target}")


def _next_steps(answers: Answers, target: Path) -> None:
    flag = "" if target == user_config_path() else f" --config {target}"
    if answers.oauth2 and not sys.stdin.isatty():
        click.echo(f"Next: inboxwatch{flag} auth {answers.name}   (sign in once)")
    click.echo(f"Then: inboxwatch{flag} scan   ·   the service: inboxwatch{flag} run")
    if sys.stdin.isatty():
        click.echo("Every other setting: config.example.toml and the README.")
