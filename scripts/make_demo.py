"""Regenerate the bundled demo mailbox (inboxwatch/demo/*.mbox).

The demo is a freelance designer's week, judged as of 2026-11-24 09:00 UTC
(cli.DEMO_AS_OF). Every message is written here by hand; nothing is copied
from real mail. Run: python scripts/make_demo.py
"""

from __future__ import annotations

import mailbox
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "inboxwatch" / "demo"
SAM = "Sam Rivera <sam@studio.example>"


def when(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def message(
    mid: str,
    sender: str,
    to: str,
    subject: str,
    at: datetime,
    body: str,
    reply_to_id: str | None = None,
    refs: tuple[str, ...] = (),
    extra: dict[str, str] | None = None,
    status: str = "",
) -> mailbox.mboxMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(at)
    msg["Message-ID"] = f"<{mid}>"
    if reply_to_id:
        msg["In-Reply-To"] = f"<{reply_to_id}>"
    if refs:
        msg["References"] = " ".join(f"<{r}>" for r in refs)
    for key, value in (extra or {}).items():
        msg[key] = value
    msg.set_content(body)
    box_msg = mailbox.mboxMessage(msg)
    box_msg.set_from("MAILER-DAEMON", at.timetuple())
    if status:
        box_msg.set_flags(status)
    return box_msg


INBOX = [
    message(
        "kim-1@museum.example",
        "Kim Lee <kim@museum.example>",
        SAM,
        "Re: Exhibition poster — first drafts",
        when(16, 10, 5),
        "Draft B is lovely. Can you send the print-ready PDF by Friday?",
        "sam-kim-1@studio.example",
        ("sam-kim-1@studio.example",),
    ),
    message(
        "ben-1@bakery.example",
        "Ben Okafor <ben@bakery.example>",
        SAM,
        "Logo revisions, round 2",
        when(18, 9, 30),
        "Here are our notes on round 2.",
    ),
    message(
        "ben-2@bakery.example",
        "Ben Okafor <ben@bakery.example>",
        SAM,
        "Re: Logo revisions, round 2",
        when(22, 10, 0),
        "Thanks! One more thing: could the wheat be a bit darker?",
        "sam-ben-1@studio.example",
        ("ben-1@bakery.example", "sam-ben-1@studio.example"),
    ),
    message(
        "frank-1@startup.example",
        "Frank Moreau <frank@startup.example>",
        SAM,
        "Website quote",
        when(19, 8, 0),
        "Could you quote for a five-page site?",
    ),
    message(
        "grace-1@gallery.example",
        "Grace Park <grace@gallery.example>",
        SAM,
        "Thanks for the drafts!",
        when(20, 11, 0),
        "Can we talk about the colours?",
        status="RA",
    ),
    message(
        "hugo-1@type.example",
        "Hugo Blanc <hugo@type.example>",
        SAM,
        "Font licence",
        when(20, 15, 0),
        "Which licence tier do you need?",
    ),
    message(
        "anna-1@client.example",
        "Anna Keller <anna@client.example>",
        SAM,
        "Invoice 2026-031: question about VAT",
        when(21, 14, 12),
        "Your invoice shows 19 % VAT, but we are in Austria. Could you check?",
    ),
    message(
        "joerg-1@verlag.example",
        "=?utf-8?q?J=C3=B6rg_M=C3=BCller?= <joerg@verlag.example>",
        SAM,
        "=?utf-8?q?Angebot_f=C3=BCr_die_Brosch=C3=BCre?=",
        when(22, 7, 45),
        "Wir hätten gern ein Angebot für 24 Seiten.",
    ),
    message(
        "news-212@designweekly.example",
        "Design Weekly <news@designweekly.example>",
        SAM,
        "Design Weekly #212: grids are back",
        when(23, 6, 0),
        "This week in design...",
        extra={
            "List-Id": "Design Weekly <weekly.designweekly.example>",
            "List-Unsubscribe": "<mailto:leave@designweekly.example>",
            "Precedence": "bulk",
        },
    ),
    message(
        "dana-ooo@printshop.example",
        "Dana Schulz <dana@printshop.example>",
        SAM,
        "Automatic reply: Poster print run",
        when(23, 9, 0),
        "I am out of the office until 1 December.",
        extra={"Auto-Submitted": "auto-replied"},
    ),
    message(
        "bounce-1@mx.studio.example",
        "Mail Delivery System <MAILER-DAEMON@mx.studio.example>",
        SAM,
        "Undelivered Mail Returned to Sender",
        when(23, 9, 5),
        "This is the mail system. Your message could not be delivered.",
    ),
    message(
        "billing-77@cloudhost.example",
        "CloudHost <no-reply@cloudhost.example>",
        SAM,
        "Your invoice from CloudHost",
        when(23, 12, 0),
        "Your monthly invoice is ready.",
    ),
    message(
        "erik-1@agency.example",
        "Erik Holm <erik@agency.example>",
        "Team <team@agency.example>",
        "Friday drinks",
        when(23, 13, 0),
        "Drinks on Friday at six!",
        extra={"Cc": SAM},
    ),
    message(
        "carla-1@agency.example",
        "Carla Diaz <carla@agency.example>",
        SAM,
        "Can we move Thursday's call?",
        when(23, 16, 30),
        "Would 3 pm work instead?",
    ),
]

SENT = [
    message(
        "sam-kim-1@studio.example",
        SAM,
        "Kim Lee <kim@museum.example>",
        "Exhibition poster — first drafts",
        when(10, 17, 0),
        "Attached: drafts A and B.",
    ),
    message(
        "sam-ben-1@studio.example",
        SAM,
        "Ben Okafor <ben@bakery.example>",
        "Re: Logo revisions, round 2",
        when(18, 16, 0),
        "Round 3 attached.",
        "ben-1@bakery.example",
        ("ben-1@bakery.example",),
    ),
    message(
        "sam-frank-1@studio.example",
        SAM,
        "Frank Moreau <frank@startup.example>",
        "Re: Website quote",
        when(19, 12, 0),
        "Quote attached.",
        "frank-1@startup.example",
        ("frank-1@startup.example",),
    ),
    # Sent from a phone client that drops In-Reply-To/References: the subject
    # fallback joins it to Hugo's thread because it went to Hugo's address.
    message(
        "sam-hugo-1@studio.example",
        SAM,
        "Hugo Blanc <hugo@type.example>",
        "Re: Font licence",
        when(20, 18, 0),
        "The desktop tier, please.",
    ),
]


def write(name: str, messages: list[mailbox.mboxMessage]) -> None:
    path = OUT / name
    path.unlink(missing_ok=True)
    box = mailbox.mbox(path)
    for msg in messages:
        box.add(msg)
    box.close()


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    write("INBOX.mbox", INBOX)
    write("Sent.mbox", SENT)
