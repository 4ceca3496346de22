"""Report -> the contract's JSON, or a table for people. Data to stdout, problems to stderr."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import IO, Any

from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.control import strip_control_codes
from rich.markup import escape
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from inboxwatch.core.model import Finding, ReplyStandard, Report, ReportError
from inboxwatch.core.reminders import by_urgency
from inboxwatch.core.trend import Compared, trend
from inboxwatch.core.unanswered import human_duration

REPORT_VERSION = 1
SUBJECT_WIDTH = 80


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def finding_json(f: Finding, as_of: datetime) -> dict[str, Any]:
    return {
        "account": f.account,
        "thread_id": f.thread_id,
        "subject": f.subject,
        "correspondent": {"name": f.correspondent.name, "address": f.correspondent.address},
        "waiting_since": iso(f.waiting_since),
        "waiting_hours": round((as_of - f.waiting_since).total_seconds() / 3600, 1),
        "message_ids": list(f.message_ids),
        "folder": f.folder,
        "uids": list(f.uids),
        "messages_in_thread": f.messages_in_thread,
        # The reply standard that applies (issue 19): the rule that set it, if one did.
        "priority": f.priority,
        "rule": f.rule or None,
        "due": iso(f.due) if f.due else None,
        "business_waiting_hours": _hours(
            f.business_waiting.total_seconds() if f.business_waiting is not None else None
        ),
        "escalated": f.escalated,
        "digests_seen": f.digests_seen,
        "last_reply": iso(f.last_reply) if f.last_reply else None,
        "reason": f.reason,
        "reasons": [
            {
                "kind": r.kind,
                "message_id": r.message_id or None,
                "at": iso(r.at) if r.at else None,
                "detail": r.detail,
            }
            for r in f.reasons
        ],
    }


def _awaited_json(f: Finding, as_of: datetime) -> dict[str, Any]:
    entry = finding_json(f, as_of)
    return {("recipient" if k == "correspondent" else k): v for k, v in entry.items()}


def _event(f: Finding) -> dict[str, str]:
    title, start = f.event or ("", "")
    return {"title": title, "start": start}


def _error_json(e: ReportError) -> dict[str, Any]:
    return {
        "account": e.account,
        "kind": e.kind,
        "message": e.message,
        "folder": e.folder,
        "uid": e.uid,
    }


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 3600, 1)


def _figures_json(reply: ReplyStandard) -> dict[str, Any]:
    share = reply.share_within_window()
    return {
        "conversations": reply.conversations,
        "answered": reply.answered,
        "median_hours": _hours(reply.percentile(0.5)),
        "p90_hours": _hours(reply.percentile(0.9)),
        "within_window_share": None if share is None else round(share, 3),
    }


def _compared_json(group: Compared) -> dict[str, Any]:
    return {**_figures_json(group.current), "previous": _figures_json(group.previous)}


def _standard_json(reply: ReplyStandard, as_of: datetime) -> dict[str, Any]:
    """The lookback's figures; the last 7 days (`week`) beside the 7 before (`previous`);
    each week's (`weeks`, oldest first); and this week against the last per rule and
    per priority (issue 19, item 6)."""
    found = trend(reply, as_of)
    return {
        **_figures_json(reply),
        "week": _figures_json(found.current),
        "previous": _figures_json(found.previous),
        "weeks": [
            {"start": iso(start), **_figures_json(figures)} for start, figures in found.weeks
        ],
        "rules": [{"rule": g.name or None, **_compared_json(g)} for g in found.rules],
        "priorities": {g.name: _compared_json(g) for g in found.priorities},
    }


def report_json(report: Report) -> dict[str, Any]:
    """The pinned `scan --format json` envelope (contract.md); keys may be added, never renamed."""
    return {
        "version": REPORT_VERSION,
        "generated_at": iso(report.generated_at),
        "as_of": iso(report.as_of),
        "accounts": [
            {
                "name": a.name,
                "folders": list(a.folders),
                "sent_folders": list(a.sent_folders),
                "messages": a.messages,
                "threads": a.threads,
            }
            for a in report.accounts
        ],
        "overdue": [finding_json(f, report.as_of) for f in report.overdue],
        # Calendar invitations not yet answered: entries like `overdue`, plus the event.
        "invitations": [
            {**finding_json(f, report.as_of), "event": _event(f)} for f in report.invitations
        ],
        # Your messages nobody answered for longer than followup_after: like `overdue`,
        # with `recipient` for `correspondent`.
        "awaiting": [_awaited_json(f, report.as_of) for f in report.awaiting],
        "stats": {
            "threads": report.stats.threads,
            "answered": report.stats.answered,
            "overdue": report.stats.overdue,
            "pending": report.stats.pending,
            "excluded": dict(sorted(report.stats.excluded.items())),
            "snoozed": len(report.snoozed),  # waiting, hidden by `inboxwatch snooze`/`mute`
            "muted": len(report.muted),
            "reply_standard": _standard_json(report.stats.reply, report.as_of),
        },
        "errors": [_error_json(e) for e in report.errors],
    }


def write_json(report: Report, out: IO[str]) -> None:
    """The JSON report, written as it is encoded. A 100,000-message mailbox's is ~38 MB:
    made as one string (with the encoder's million pieces before their join), `scan
    --format json` peaked at ~440 MB where the table's run takes 213."""
    pieces: list[str] = []
    encoder = json.JSONEncoder(indent=2, ensure_ascii=False)
    for piece in encoder.iterencode(report_json(report)):
        pieces.append(piece)
        if len(pieces) == 4096:  # one write per few hundred KB, not one per piece
            out.write("".join(pieces))
            pieces.clear()
    out.write("".join(pieces) + "\n")


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_table(report: Report, console: Console) -> None:
    """Escalated and high priority first, then longest wait first; the dim line under each
    subject says why it is listed."""
    if not report.accounts:
        return  # every account failed: the errors on stderr say why; "nothing waiting" would lie
    if report.overdue:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        table.add_column("Waiting", no_wrap=True, style="bold red")
        table.add_column("From", overflow="fold", max_width=36)
        table.add_column("Subject / why", overflow="fold")
        table.add_column("Folder", no_wrap=True)
        several = len(report.accounts) > 1
        if several:
            table.add_column("Account", no_wrap=True)
        for f in sorted(report.overdue, key=by_urgency):
            subject = _marks(f)
            subject.append(_cut(f.subject or "(no subject)", SUBJECT_WIDTH))
            subject.append("\n" + f.reason, style="dim")
            row: list[str | Text] = [
                human_duration(report.as_of - f.waiting_since),
                Text(f.correspondent.display()),
                subject,
                Text(f.folder),
            ]
            if several:
                row.append(Text(f.account))
            table.add_row(*row)
        console.print(table)
    if report.awaiting:
        lines = map(partial(_awaited_line, report.as_of), report.awaiting)
        console.print(_Lines(lines, "yellow"), soft_wrap=True)
    console.print(summary(report), highlight=False, soft_wrap=True)


class _Lines:
    """Plain lines in one style, handed to rich as they are. Not markup: a subject holding
    "[/x]" made `console.print` raise (MarkupError) and "[bold]" restyled its line. Not a
    Text of them all either: at 100,000 messages rich took 1.2 s over 21,000 awaited
    threads' lines as one Text, and 1.0 s printed one by one; as segments, 0.2-0.3 s."""

    def __init__(self, lines: Iterable[str], style: str) -> None:
        self.lines, self.style = lines, style

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        style = console.get_style(self.style)
        for line in self.lines:
            yield Segment(strip_control_codes(line), style)  # as Text would
            yield Segment.line()


def _awaited_line(as_of: datetime, f: Finding) -> str:
    waited = human_duration(as_of - f.waiting_since)
    return f"Waiting on {f.correspondent.display()} for {waited}: {_cut(f.subject, 60)}"


def _marks(f: Finding) -> Text:
    """ESCALATED, HIGH or LOW before the subject; nothing for a normal thread."""
    marks = Text()
    if f.escalated:
        marks.append("ESCALATED ", style="bold red")
    if f.priority != "normal":
        marks.append(
            f"{f.priority.upper()} ", style="bold yellow" if f.priority == "high" else "dim"
        )
    return marks


def summary(report: Report) -> str:
    s = report.stats
    count = len(report.overdue)
    window = f" > {_short(report.window)}" if report.window else " past their window"
    head = (
        f"{count} conversation{'s' if count != 1 else ''} waiting{window}"
        if count
        else f"Nothing waiting{window}"
    )
    as_of = report.as_of.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return escape(
        f"{head} (as of {as_of}) · {s.threads} threads, {s.answered} answered, "
        f"{s.pending} waiting inside the window"
    )


def _short(delta: timedelta) -> str:
    """24h stays 24h (how people state a reply standard); 2d, 1w, 90m as written."""
    seconds = int(delta.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and (unit != "d" or seconds >= 2 * 86400):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def render_errors(report: Report, echo: Callable[[str], None]) -> None:
    """Serious errors one line each; parse failures as one count per account."""
    parse_counts: dict[str, int] = {}
    for e in report.errors:
        if e.kind == "parse":
            parse_counts[e.account] = parse_counts.get(e.account, 0) + 1
        else:
            echo(f"inboxwatch: {e.account}: {e.message}")
    for account, n in parse_counts.items():
        echo(
            f"inboxwatch: {account}: {n} message{'s' if n != 1 else ''} could not be parsed "
            "(counted in the JSON report's errors)"
        )
