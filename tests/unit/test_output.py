"""The terminal table (cli.output): user text is printed as written, never read as markup."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

from rich.console import Console

from inboxwatch.cli.output import render_table, report_json, write_json
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


class _Writes(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def write(self, text: str) -> int:
        self.sizes.append(len(text))
        return super().write(text)


def test_the_json_report_is_written_as_it_is_encoded() -> None:
    """The same text as one json.dumps, in pieces: a big mailbox's report is never one
    string (38 MB at 100,000 messages, which doubled `scan --format json`'s peak)."""
    report = Report(NOW, NOW, timedelta(hours=24))
    report.accounts.append(AccountSummary("work", ("INBOX",), ("Sent",), 3, 3, timedelta(hours=24)))
    report.overdue.extend(_awaited(f"Subject {n} – ü", 30 + n) for n in range(3000))
    out = _Writes()
    write_json(report, out)
    assert out.getvalue() == json.dumps(report_json(report), indent=2, ensure_ascii=False) + "\n"
    assert len(out.sizes) > 10 and max(out.sizes) < len(out.getvalue()) // 10
