"""`inboxwatch explain MESSAGE-ID | --subject TEXT`: the thread, each message's role and
the verdict, on IMAP accounts or mail on disk (issue 18, item 4)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime

import click

from inboxwatch.cli.common import (
    AS_OF_OPTION,
    DEMO_AS_OF,
    LocalMail,
    config_jobs,
    demo_jobs,
    local_jobs,
    local_mail_options,
)
from inboxwatch.cli.options import common_options, load_config, setup_logging
from inboxwatch.core.bodies import Bodies
from inboxwatch.core.explain import Explanation, explain
from inboxwatch.core.scan import (
    AccountPlan,
    SourceFactory,
    collector_paused,
    counterpart_matcher,
    read_account,
)
from inboxwatch.core.snooze import Snooze
from inboxwatch.core.threads import build_threads
from inboxwatch.errors import UsageError
from inboxwatch.service.plans import NO_OVERRIDES
from inboxwatch.service.reuse import through_cache
from inboxwatch.store import beside

Job = tuple[AccountPlan, SourceFactory]


def _explained(
    job: Job, as_of: datetime, message_id: str, subject: str
) -> tuple[list[Explanation], list[str]]:
    plan, factory = job
    source = factory()
    try:
        with collector_paused():  # as a scan's: a big mailbox's objects, and no cycles
            read = read_account(plan, source, as_of)
            threads = build_threads(read.messages, counterpart_matcher(read.owner))
        wanted = (message_id, subject)
        found = explain(
            threads, read.owner, read.policy, as_of, plan.reply_window, wanted, Bodies(source).read
        )
    finally:
        source.close()
    return found, [e.message for e in read.errors if e.exit_code > 1]


def lines(account: str, found: Explanation, held: Sequence[Snooze], as_of: datetime) -> list[str]:
    thread = found.thread
    out = [f"{account}: thread {thread.thread_id}, {len(thread.messages)} message(s)"]
    for row in found.rows:
        msg = row.message
        who = msg.sender.display() if msg.sender else "(no sender)"
        when = msg.received.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
        out.append(f"  {when}  {who}  {msg.subject!r}  {msg.folder}")
        out.append(f"      {row.role}   {msg.ident}")
    out.append(f"  verdict: {found.verdict}")
    for note in held:
        if note.account == account and note.thread_id == thread.thread_id:
            until = "muted" if note.until is None else f"snoozed until {note.until:%Y-%m-%d}"
            out.append(f"  {until} (inboxwatch unsnooze {note.message_id})")
    return out


def _shown(
    jobs: Sequence[Job], when: datetime, wanted: tuple[str, str], held: Sequence[Snooze]
) -> int:
    """Each account's threads `wanted` holds, printed; how many."""
    shown = 0
    for job in jobs:
        found, problems = _explained(job, when, *wanted)
        for problem in problems:
            click.echo(f"{job[0].name}: {problem}", err=True)
        for each in found:
            click.echo("\n".join(lines(job[0].name, each, held, when)))
            shown += 1
    return shown


@click.command("explain", short_help="Why a thread is (or is not) listed: each message's role.")
@click.argument("message_id", metavar="MESSAGE-ID", required=False, default="")
@click.option("--subject", default="", metavar="TEXT", help="Threads whose subject holds TEXT.")
@click.option("--account", "accounts", multiple=True, metavar="NAME", help="Only this account.")
@AS_OF_OPTION
@local_mail_options
@click.option("--demo", is_flag=True, help="The bundled demo mailbox.")
@common_options
@click.pass_context
def explain_command(
    ctx: click.Context,
    message_id: str,
    subject: str,
    accounts: Sequence[str],
    as_of: datetime | None,
    local: LocalMail,
    demo: bool,
    config_path: str | None,
    verbose: int,
    quiet: int,
) -> None:
    """The thread holding MESSAGE-ID (or each whose subject holds --subject TEXT): every
    message with its role (yours, expects a reply, left out and why) and the verdict."""
    setup_logging(ctx, verbose, quiet)
    if bool(message_id) == bool(subject):
        raise UsageError("name one MESSAGE-ID, or --subject TEXT")
    when = as_of or (DEMO_AS_OF if demo else datetime.now(UTC))
    held: list[Snooze] = []
    with contextlib.ExitStack() as stack:
        if demo:
            jobs = demo_jobs()
        elif local.given:
            jobs = local_jobs(local, NO_OVERRIDES)
        else:
            settings = load_config(ctx, config_path)[1]
            jobs = config_jobs(settings, accounts)
            held = beside.snoozes(settings.state)
            if as_of is None:  # now: what the service's polls read is in its cache
                store = stack.enter_context(beside.cache_beside(settings.state))
                if store is not None:
                    jobs = through_cache(jobs, settings, store, when)
        shown = _shown(jobs, when, (message_id, subject), held)
    if not shown:
        what = message_id or f"a subject holding {subject!r}"
        raise UsageError(f"no thread in the lookback holds {what} (try --as-of, or scan)")
