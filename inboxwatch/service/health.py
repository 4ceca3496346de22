"""`inboxwatch health`, the container's health check: read from the state file alone."""

from __future__ import annotations

from datetime import datetime

from inboxwatch.auth.refresh import account_tokens, smtp_tokens, tokens_dir
from inboxwatch.config import Settings
from inboxwatch.errors import InboxwatchError
from inboxwatch.store import beside


def sign_ins_needed(settings: Settings) -> dict[str, str]:
    """Each OAuth identity (account or `smtp`) whose sign-in ended or never happened, with
    why: unhealthy at once, not three poll intervals later, since nothing but a person
    running `auth` fixes it."""
    sources = [
        account_tokens(a, tokens_dir(settings)) for a in settings.accounts if a.auth == "oauth2"
    ]
    smtp = smtp_tokens(settings)
    if smtp is not None and smtp.name == "smtp":
        sources.append(smtp)
    needed = {}
    for source in sources:
        try:
            tokens = source.file.read()
        except InboxwatchError as exc:
            needed[source.name] = f"{source.name}: {exc}"
            continue
        if tokens is None or tokens.ended:
            why = tokens.ended if tokens else f"not signed in; run `inboxwatch auth {source.name}`"
            needed[source.name] = f"{source.name}: sign-in needed: {why}"
    return needed


def health(settings: Settings, now: datetime) -> tuple[bool, str]:
    """Every account polled successfully within three poll intervals?"""
    polls = beside.polls(settings.state)
    limit = settings.service.poll_interval * 3
    needed = sign_ins_needed(settings)
    problems = list(needed.values())
    for account in settings.accounts:
        if account.name in needed:
            continue  # its sign-in is the problem; the polls failing follow from it
        record = polls.get(account.name)
        if record is None or record.last_success is None:
            problems.append(f"{account.name}: no successful poll yet")
        elif now - record.last_success > limit:
            why = f" (last error: {record.last_error})" if record.last_error else ""
            problems.append(
                f"{account.name}: last successful poll "
                f"{record.last_success:%Y-%m-%d %H:%M} UTC{why}"
            )
    if problems:
        return False, "; ".join(problems)
    return True, f"{len(settings.accounts)} account(s) polled within {limit}"
