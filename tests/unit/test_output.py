"""The terminal table (cli.output): user text is printed as written, never read as markup."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from rich.console import Console

from inboxwatch.cli.output import render_table
from inboxwatch.core.model import AccountSummary, Address, Finding, Report

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)


def _awaited(subject: str, hours: int) -> Finding:
    who = Address("Ann [b]Lee[/b]", "ann@x.example")
    since = NOW - timedelta(hours=hours)
    return Finding("work", f"<{hours}@x>", subject, who, since, (), "Sent", (hours,), 1, None, "")


def test_awaited_subjects_that_look_like_markup_print_as_written() -> None:
    """ "[/x]" made rich's markup raise MarkupError (a traceback instead of the audit),
    and "[bold]" restyled the line."""
    subjects = ["Re: [/x] closing tag", "[bold]not bold[/bold]"]
    report = Report(NOW, NOW, timedelta(hours=24))
    report.accounts.append(AccountSummary("work", ("INBOX",), ("Sent",), 3, 3, timedelta(hours=24)))
    report.awaiting.extend(_awaited(s, 30 + n) for n, s in enumerate(subjects))
    out = io.StringIO()
    render_table(report, Console(file=out, width=200, force_terminal=True, color_system="standard"))
    lines = out.getvalue().splitlines()
    assert lines[:2] == [
        "\x1b[33mWaiting on Ann [b]Lee[/b] <ann@x.example> for 1 day 6 hours: "
        "Re: [/x] closing tag\x1b[0m",
        "\x1b[33mWaiting on Ann [b]Lee[/b] <ann@x.example> for 1 day 7 hours: "
        "[bold]not bold[/bold]\x1b[0m",
    ]
    assert "Nothing waiting" in lines[2]
