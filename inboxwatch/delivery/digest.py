"""Report -> the digest e-mail (subject, text, HTML) with Jinja2. Pure: `now` is a parameter.

Everything that came from mail is cleaned of CR/LF and control characters
(again: a template must not depend on the source having done it) and cut to
a readable length; the HTML template autoescapes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, getaddresses, parseaddr
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    PackageLoader,
    StrictUndefined,
    select_autoescape,
)

from inboxwatch.config import Account, Digest
from inboxwatch.core.model import SYNTHETIC_DOMAIN, Finding, ReplyStandard, Report
from inboxwatch.core.parse import clean_text
from inboxwatch.core.reminders import by_account, listed, reminding, reminds
from inboxwatch.core.trend import trend
from inboxwatch.core.unanswered import human_duration
from inboxwatch.links import bare_id, open_link, open_template, reply_link
from inboxwatch.periods import next_run, period_key

SUBJECT_LIMIT = 120
NAME_LIMIT = 80


@dataclass(frozen=True)
class RenderedDigest:
    subject: str
    text: str
    html: str
    overdue: int


def environment(template_dir: str = "") -> Environment:
    """Shipped templates, overridden file by file by `digest.template_dir`."""
    loaders: list[Any] = [FileSystemLoader(template_dir)] if template_dir else []
    loaders.append(PackageLoader("inboxwatch.delivery", "templates"))
    return Environment(
        loader=ChoiceLoader(loaders),
        undefined=StrictUndefined,
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _cut(text: str, limit: int) -> str:
    text = clean_text(text, limit * 2)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _window_text(window: timedelta | None) -> str:
    if window is None:
        return "past their reply window"
    hours = window.total_seconds() / 3600
    return f"> {hours:g}h" if hours < 48 or hours % 24 else f"> {hours / 24:g} days"


def _links(f: Finding, account: Account | None) -> dict[str, str]:
    """The thread's link in webmail (the account's `open_url`) and a reply `mailto:`, both
    for its newest pending message. A link that would need a Message-ID the message
    lacks is left out rather than pointing at nothing."""
    message_id = f.message_ids[-1] if f.message_ids else ""
    real_id = bool(message_id) and not message_id.endswith(SYNTHETIC_DOMAIN + ">")
    opened = ""
    if account is not None and account.open_url:
        template = open_template(account.open_url)
        if real_id or "{message_id}" not in template:
            opened = open_link(
                template,
                message_id=bare_id(message_id),
                subject=f.subject,
                uid=f.uids[-1] if f.uids else "",
                folder=f.folder,
                address=account.addresses[0],
            )
    reply = reply_link(f.correspondent.address, f.subject, message_id if real_id else "")
    return {"open_url": opened, "reply_url": reply}


def _item(f: Finding, zone: ZoneInfo, now: datetime, account: Account | None) -> dict[str, Any]:
    return {
        **_links(f, account),
        "name": _cut(f.correspondent.name, NAME_LIMIT),
        "address": _cut(f.correspondent.address, NAME_LIMIT),
        "subject": _cut(f.subject or "(no subject)", SUBJECT_LIMIT),
        "waited": human_duration(now - f.waiting_since),
        "arrived": f.waiting_since.astimezone(zone).strftime("%a %d %b, %H:%M"),
        "folder": _cut(f.folder, NAME_LIMIT),
        "messages": f.messages_in_thread,
        "why": _cut(f.reason, 300),
        **_standing(f),
    }


def _standing(f: Finding) -> dict[str, Any]:
    """How urgent it is (escalated, priority), how often it was listed, and its wait in
    business hours when the account keeps them."""
    marks = ["escalated"] if f.escalated else []
    if f.priority != "normal":
        marks.append(f"{f.priority} priority")
    seen = f.digests_seen
    business = f.business_waiting
    return {
        "marks": marks,
        "seen": f"listed in {seen} earlier digest{'s' if seen != 1 else ''}" if seen else "",
        "business": f"{business / timedelta(hours=1):.1f} business hours".replace(".0 ", " ")
        if business is not None
        else "",
    }


def event_start(value: str, zone: ZoneInfo) -> str:
    """An iCalendar DTSTART for people: UTC times in the digest's zone, dates as dates,
    floating or TZID times as written (RFC 5545 3.3.4/3.3.5)."""
    text = value.strip()
    try:
        if len(text) == 8:
            return datetime.strptime(text, "%Y%m%d").strftime("%a %d %b %Y")
        if text.endswith("Z"):
            moment = datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=ZoneInfo("UTC"))
            return moment.astimezone(zone).strftime("%a %d %b %Y, %H:%M")
        return datetime.strptime(text, "%Y%m%dT%H%M%S").strftime("%a %d %b %Y, %H:%M")
    except ValueError:
        return _cut(text, NAME_LIMIT)


def _invitation(
    f: Finding, zone: ZoneInfo, now: datetime, account: Account | None
) -> dict[str, Any]:
    title, start = f.event or ("", "")
    return {
        **_item(f, zone, now, account),
        "title": _cut(title or f.subject, SUBJECT_LIMIT),
        "start": event_start(start, zone) if start else "",
    }


def short_duration(seconds: float | None) -> str:
    """Compact, for a figure: `45 min`, `6.5 h`, `3.2 days`."""
    if seconds is None:
        return "n/a"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h".replace(".0 h", " h")
    return f"{seconds / 86400:.1f} days".replace(".0 days", " days")


def _standard(
    reply: ReplyStandard, window: timedelta | None, now: datetime
) -> dict[str, Any] | None:
    if not reply.conversations:
        return None
    share = reply.share_within_window()
    ruled = window is None or any(c.rule for c in reply.each)
    found = trend(reply, now)
    return {
        "conversations": reply.conversations,
        "answered": reply.answered,
        "median": short_duration(reply.percentile(0.5)),
        "p90": short_duration(reply.percentile(0.9)),
        "share": f"{share:.0%}" if share is not None else "n/a",
        "window": "their windows" if ruled else _window_text(window).removeprefix("> "),
        "trend": _compared(found.current, found.previous),
        "weeks": [_week(start, figures) for start, figures in found.weeks],
        "groups": [
            f"{g.name}: {_compared(g.current, g.previous)}"
            for g in found.rules
            if g.name and (g.current.judged or g.previous.judged)
        ]
        + [
            f"{g.name} priority: {_compared(g.current, g.previous)}"
            for g in found.priorities
            if len(found.priorities) > 1 and (g.current.judged or g.previous.judged)
        ],
    }


def _compared(current: ReplyStandard, previous: ReplyStandard) -> str:
    """`84% this week, up from 79%`."""
    now, before = current.share_within_window(), previous.share_within_window()
    if now is None:
        return "nothing judged this week yet"
    text = f"{now:.0%} this week"
    if before is None:
        return text
    if round(now * 100) == round(before * 100):
        return text + f", as the week before ({before:.0%})"
    return text + f", {'up' if now > before else 'down'} from {before:.0%}"


def _week(start: datetime, figures: ReplyStandard) -> dict[str, Any]:
    """One bar of the chart: a table cell as wide as the share (no images: Gmail, Outlook
    and Apple Mail all draw a table)."""
    share = figures.share_within_window()
    return {
        "label": f"{start:%d %b}",
        "share": f"{share:.0%}" if share is not None else "–",
        "width": round(share * 100) if share is not None else 0,
        "judged": figures.judged,
    }


def _sign_ins(report: Report) -> list[str]:
    """Accounts stopped until someone signs in again: first thing in the digest, since
    nothing of them is watched until then."""
    return [
        _cut(f"{e.account} is not being watched: {e.message}", 400)
        for e in report.errors
        if e.kind == "signin"
    ]


def _warnings(report: Report) -> list[str]:
    lines, parse = [], 0
    for error in report.errors:
        if error.kind == "parse":
            parse += 1
        elif error.kind == "signin":
            continue  # at the top (_sign_ins)
        else:
            lines.append(_cut(f"{error.account}: {error.message}", 400))
    if parse:
        lines.append(
            f"{parse} message{'s' if parse != 1 else ''} could not be read and were "
            "left out (see `inboxwatch scan --format json`)"
        )
    return lines


def _sections(
    report: Report,
    zone: ZoneInfo,
    now: datetime,
    upcoming: datetime | None,
    configs: dict[str, Account],
) -> list[dict[str, Any]]:
    """Each account's overdue threads, invitations, messages of yours awaiting an answer,
    and the threads due before the next digest: each list its first entries (`listed`),
    with how many more there are (`<list>_more`, 0 when none)."""
    sections = []
    accounts = len(report.accounts)
    overdue, invitations = reminding(report), by_account(report.invitations)
    awaiting, waiting = by_account(report.awaiting), by_account(report.waiting)
    for summary in report.accounts:
        name, config = summary.name, configs.get(summary.name)
        soon = [
            f
            for f in waiting.get(name, [])
            if upcoming is not None and (f.due or f.waiting_since + summary.window) <= upcoming
        ]
        section: dict[str, Any] = {"name": _cut(name, NAME_LIMIT)}
        lists = {
            "overdue": overdue.get(name, []),
            "invitations": invitations.get(name, []),
            "awaiting": awaiting.get(name, []),
            "due_soon": soon,
        }
        for key, found in lists.items():
            shown, more = listed(found, accounts)
            entry = _invitation if key == "invitations" else _item
            section[key] = [entry(f, zone, now, config) for f in shown]
            section[f"{key}_more"] = more
        sections.append(section)
    return sections


def _held(report: Report) -> str:
    """`2 snoozed, 1 muted`: threads waiting, hidden by the user's own choice."""
    once = [f for f in report.overdue if not reminds(f)]
    parts = [
        f"{len(items)} {word}"
        for items, word in (
            (report.snoozed, "snoozed"),
            (report.muted, "muted"),
            (once, "listed once already (remind = once)"),
        )
        if items
    ]
    return f"{', '.join(parts)} (`inboxwatch snoozed` lists them)" if parts else ""


def context(
    report: Report, config: Digest, now: datetime, accounts: Sequence[Account] = ()
) -> dict[str, Any]:
    """Everything the templates show, as plain, pre-formatted values; `accounts` (the
    config's) give each entry its links."""
    zone = ZoneInfo(config.timezone)
    upcoming = next_run(config.schedule, config.timezone, now)
    sections = _sections(report, zone, now, upcoming, {a.name: a for a in accounts})
    count = sum(len(a["overdue"]) + a["overdue_more"] for a in sections)
    window = _window_text(report.window)
    subject = (
        f"{count} conversation{'s' if count != 1 else ''} waiting {window}"
        if count
        else f"Nobody is waiting {window}"
    )
    invites = len(report.invitations)
    if invites:
        subject += f" · {invites} invitation{'s' if invites != 1 else ''} to answer"
    return {
        "subject": subject,
        "as_of": report.as_of.astimezone(zone).strftime("%A %d %B %Y, %H:%M %Z"),
        "accounts": sections,
        "several_accounts": len(sections) > 1,
        "overdue_count": count,
        "due_soon_count": sum(len(a["due_soon"]) + a["due_soon_more"] for a in sections),
        "standard": _standard(report.stats.reply, report.window, report.as_of),
        "warnings": _warnings(report),
        "sign_ins": _sign_ins(report),
        "held": _held(report),
        "next_digest": upcoming.astimezone(zone).strftime("%a %d %b, %H:%M") if upcoming else "",
    }


def render(
    report: Report, config: Digest, now: datetime, accounts: Sequence[Account] = ()
) -> RenderedDigest:
    env = environment(config.template_dir)
    values = context(report, config, now, accounts)
    return RenderedDigest(
        subject=values["subject"],
        text=env.get_template("digest.txt.j2").render(values),
        html=env.get_template("digest.html.j2").render(values),
        overdue=values["overdue_count"],
    )


def sender_of(config: Digest) -> str:
    """`digest.sender`, else the first recipient."""
    return config.sender or (f"inboxwatch <{config.to[0]}>" if config.to else "")


def message_id(config: Digest, now: datetime) -> str:
    """Stable per digest period and recipients: a resend carries the same Message-ID."""
    period = period_key(config.schedule, config.timezone, now)
    digest_for = hashlib.sha256("\n".join([period, *sorted(config.to)]).encode()).hexdigest()
    domain = parseaddr(sender_of(config))[1].rpartition("@")[2] or "inboxwatch.invalid"
    return f"<digest.{digest_for[:24]}@{domain}>"


def compose(rendered: RenderedDigest, config: Digest, now: datetime) -> EmailMessage:
    """multipart/alternative (text, then HTML), marked machine-sent per RFC 3834."""
    msg = EmailMessage()
    msg["Subject"] = rendered.subject
    msg["From"] = sender_of(config)
    msg["To"] = ", ".join(formataddr(pair) for pair in getaddresses(config.to) if pair[1])
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id(config, now)
    # RFC 3834: no auto-reply to this, and no tool (inboxwatch included) counts it as a person's.
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"  # Exchange: no out-of-office replies to a digest
    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    return msg


def digest_message(
    report: Report, config: Digest, now: datetime, accounts: Sequence[Account] = ()
) -> EmailMessage | None:
    """The digest e-mail, or None when nobody waits and `send_when_empty` is off, and no
    sign-in ended (a person must act on that: it is said even when nobody waits)."""
    quiet = not report.overdue and not report.invitations
    if quiet and not config.send_when_empty and not _sign_ins(report):
        return None
    return compose(render(report, config, now, accounts), config, now)
