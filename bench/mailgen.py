"""Generate a realistic mailbox straight into Maildir folders (far faster than IMAP APPEND).

Conversations between customers and the owner (some answered, some left waiting,
follow-ups carrying the whole References chain), threads the owner starts,
mailing-list threads, newsletters and auto-replies. Header blocks are shaped like
the real mail in `../shared/corpus` and what Gmail, Outlook and Thunderbird write:
long Message-IDs, References and multi-recipient To/Cc folded one item a line,
MIME boundaries (folded by Outlook and Thunderbird), RFC 2047 names and
subjects, Received chains and DKIM. Bodies of a few KB and a few large
attachments. Deterministic for a seed. A file's mtime becomes Dovecot's INTERNALDATE.
"""

from __future__ import annotations

import os
import random
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.header import Header
from email.utils import format_datetime
from pathlib import Path

OWNER = "owner@bench.example"
WORDS = (
    "invoice order shipping quote design logo meeting schedule contract draft review update "
    "question thanks please regarding attached follow budget timeline project support ticket "
    "account access password delivery refund payment"
).split()
FIRST = "Anna Ben Chloé Dmitri Elena Farid Grace Hiro Ines Jürgen Kofi Lena Mateo Nora Omar".split()
LAST = "Smith García Müller Rossi Nowak Tanaka Dubois Silva Jensen Kowalski Okafor Ivanova".split()
B62 = string.ascii_letters + string.digits
Message = tuple[str, bytes, datetime, str]  # (folder, bytes, time, Maildir flags)


@dataclass(frozen=True)
class Generated:
    inbox: int
    sent: int
    newest: datetime


@dataclass
class _Party:
    """Someone who writes: address, display name and the mail client's header habits."""

    address: str
    name: str
    client: str  # gmail | outlook | thunderbird
    zone: timezone = UTC  # the Date header is written in the sender's own zone
    colleagues: list[str] = field(default_factory=list)

    @property
    def mailbox(self) -> str:
        return f"{self.name} <{self.address}>" if self.name else self.address


def _chars(rng: random.Random, n: int, alphabet: str = B62) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _message_id(rng: random.Random, who: _Party) -> str:
    if who.client == "gmail":
        return f"<CA{_chars(rng, 52)}@mail.gmail.com>"
    if who.client == "outlook":
        host = (
            f"{_chars(rng, 4, string.ascii_uppercase)}{rng.randint(1, 9)}P{rng.randint(100, 999)}"
        )
        return (
            f"<{host}MB{rng.randint(1000, 9999)}{_chars(rng, 16, string.ascii_uppercase)}"
            f"@{host}MB{rng.randint(1000, 9999)}.EURP{rng.randint(100, 299)}.PROD.OUTLOOK.COM>"
        )
    return f"<{rng.getrandbits(128):032x}@{who.address.split('@')[1]}>"


def _display(rng: random.Random) -> str:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    style = rng.random()
    if style < 0.25:
        return f'"{last}, {first}"'
    if not (first + last).isascii() and style < 0.6:
        return Header(f"{first} {last}", "utf-8").encode()  # RFC 2047, as most clients do
    return f"{first} {last}"


def _content_type(rng: random.Random, who: _Party) -> tuple[str, str]:
    """(header, boundary): Gmail keeps the boundary on one line, Outlook and Thunderbird fold."""
    if who.client == "gmail":
        boundary = f"{rng.getrandbits(112):028x}"
        return f'Content-Type: multipart/alternative; boundary="{boundary}"', boundary
    if who.client == "outlook":
        boundary = f"_000_{_chars(rng, 40, string.ascii_uppercase + string.digits)}_"
        return f'Content-Type: multipart/alternative;\r\n\tboundary="{boundary}"', boundary
    if rng.random() < 0.5:
        return "Content-Type: text/plain; charset=UTF-8; format=flowed", ""
    boundary = f"------------{_chars(rng, 24)}"
    return f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"', boundary


def _folded(name: str, items: list[str], sep: str) -> str:
    """`Name: a<sep>\\r\\n b<sep>\\r\\n c`: one item a line, as clients write long lists."""
    return f"{name}: " + f"{sep}\r\n ".join(items)


def _subject(rng: random.Random) -> str:
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 10))).capitalize()
    if rng.random() < 0.05:
        return Header(text + " – " + rng.choice(FIRST), "utf-8").encode()  # RFC 2047
    if len(text) > 60:  # folded at a space, as RFC 5322 2.2.3 suggests for long lines
        cut = text.rfind(" ", 0, 60)
        text = text[:cut] + "\r\n" + text[cut:]
    return text


def _received(rng: random.Random, when: datetime) -> str:
    hops = []
    for n in range(rng.randint(2, 4)):
        stamp = format_datetime(when - timedelta(seconds=n * 3))
        hops.append(
            f"Received: from mx{n}.relay{rng.randint(1, 99)}.example (mx{n}.example "
            f"[192.0.2.{rng.randint(1, 254)}])\r\n\tby mail.bench.example with ESMTPS "
            f"id {rng.getrandbits(64):016x}\r\n\tfor <{OWNER}>; {stamp}"
        )
    return "\r\n".join(hops)


def _dkim(rng: random.Random, domain: str) -> str:
    sig = _chars(rng, 340, B62 + "+/")
    return (
        f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={domain}; s=s1;\r\n"
        "\th=from:to:subject:date:message-id; bh="
        + sig[:44]
        + ";\r\n\tb="
        + "\r\n\t ".join(sig[i : i + 70] for i in range(0, len(sig), 70))
    )


def _body(rng: random.Random, size: int) -> str:
    words = []
    total = 0
    while total < size:
        word = rng.choice(WORDS)
        words.append(word)
        total += len(word) + 1
    lines = [" ".join(words[i : i + 12]) for i in range(0, len(words), 12)]
    return "\r\n".join(lines)


def _message(rng: random.Random, headers: list[str], content: tuple[str, str], big: bool) -> bytes:
    text = _body(rng, int(rng.expovariate(1 / 4000)) + 400)
    header, boundary = content
    if big and not boundary:
        boundary = f"------------{_chars(rng, 24)}"
        header = f'Content-Type: multipart/mixed;\r\n boundary="{boundary}"'
    head = "\r\n".join([*headers, "MIME-Version: 1.0", header])
    if not boundary:
        return (head + "\r\n\r\n" + text + "\r\n").encode()
    parts = [
        f"Content-Type: text/plain; charset=UTF-8\r\n\r\n{text}",
        f"Content-Type: text/html; charset=UTF-8\r\n\r\n<div>{text}</div>",
    ]
    if big:
        blob = "QUJD" * (1024 * 1024 // 4)
        lines = "\r\n".join(blob[i : i + 76] for i in range(0, len(blob), 76))
        parts.append(
            "Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n" + lines
        )
    body = "".join(f"--{boundary}\r\n{part}\r\n" for part in parts)
    return f"{head}\r\n\r\n{body}--{boundary}--\r\n".encode()


class _Mailbox:
    """Who writes to the owner, and the conversations they have."""

    def __init__(self, rng: random.Random, newest: datetime) -> None:
        self.rng = rng
        self.newest = newest
        self.owner = _Party(OWNER, "Owner", "thunderbird")
        clients = ("gmail",) * 9 + ("outlook",) * 7 + ("thunderbird",) * 4
        self.customers = [self._customer(n, rng.choice(clients)) for n in range(5000)]
        self.members = [self._customer(n, rng.choice(clients)) for n in range(5000, 5300)]
        self.count = 0

    def _customer(self, n: int, client: str) -> _Party:
        domain = "gmail.example" if client == "gmail" else f"client{n % 97}.example"
        zone = timezone(timedelta(minutes=30 * self.rng.randint(-16, 20)))
        who = _Party(f"c{n}@{domain}", _display(self.rng), client, zone)
        if client != "gmail":
            who.colleagues = [f"{_display(self.rng)} <p{n}.{k}@{domain}>" for k in range(3)]
        return who

    def headers(
        self,
        who: _Party,
        to: list[str],
        cc: list[str],
        subject: str,
        when: datetime,
        refs: list[str],
    ) -> tuple[list[str], str]:
        """A message's header lines (delivery's Received/DKIM on inbound mail) and its id."""
        rng, mid = self.rng, _message_id(self.rng, who)
        headers = []
        if who is not self.owner:
            domain = who.address.split("@")[1]
            headers += [f"Return-Path: <{who.address}>", _received(rng, when), _dkim(rng, domain)]
        headers += [f"From: {who.mailbox}", _folded("To", to, ",")]
        if cc:
            headers.append(_folded("Cc", cc, ","))
        headers += [
            f"Subject: {subject}",
            f"Date: {format_datetime(when.astimezone(who.zone))}",
            f"Message-ID: {mid}",
        ]
        if refs:
            headers += [f"In-Reply-To: {refs[-1]}", _folded("References", refs[-20:], "")]
        return headers, mid

    def emit(
        self, folder: str, headers: list[str], who: _Party, when: datetime, flags: str
    ) -> Message:
        self.count += 1
        content = _content_type(self.rng, who)
        return folder, _message(self.rng, headers, content, self.count % 2000 == 0), when, flags

    def conversation(self, start: datetime) -> Iterator[Message]:
        kind = self.rng.random()
        if kind < 0.10:
            yield from self.list_thread(start)
        elif kind < 0.16:
            yield self.newsletter(start)
        else:
            yield from self.exchange(start, owner_first=kind < 0.22)

    def gap(self) -> timedelta:
        return timedelta(seconds=120 + self.rng.expovariate(1 / (8 * 3600)))

    def exchange(self, start: datetime, owner_first: bool) -> Iterator[Message]:
        """Customer and owner take turns; a customer may write twice, or be away."""
        rng, owner = self.rng, self.owner
        customer = self.customers[int(len(self.customers) * rng.random() ** 2)]
        cc = (
            rng.sample(customer.colleagues, rng.randint(1, 3))
            if customer.colleagues and rng.random() < 0.3
            else []
        )
        subject, refs, when = _subject(rng), [], start
        author = owner if owner_first else customer
        while when <= self.newest:
            other = customer if author is owner else owner
            prefix = "RE: " if author.client == "outlook" else "Re: "
            subj = prefix + subject if refs else subject
            headers, mid = self.headers(author, [other.mailbox], cc, subj, when, refs)
            refs.append(mid)
            following = rng.random() < (0.45 if author is owner else 0.8)
            nxt = other if following and rng.random() < 0.9 else author
            # Mail the owner answered from their client is flagged \Answered (Maildir "R").
            flags = "RS" if author is customer and following and nxt is owner else "S"
            yield self.emit("Sent" if author is owner else "INBOX", headers, author, when, flags)
            when += self.gap()
            if author is owner and rng.random() < 0.03 and when <= self.newest:
                yield self.auto_reply(customer, subject, when, refs)
            if not following:
                return
            author = nxt

    def auto_reply(self, who: _Party, subject: str, when: datetime, refs: list[str]) -> Message:
        headers, _ = self.headers(
            who, [self.owner.mailbox], [], f"Automatic reply: {subject}", when, refs
        )
        return self.emit("INBOX", [*headers, "Auto-Submitted: auto-replied"], who, when, "S")

    def list_thread(self, start: datetime) -> Iterator[Message]:
        rng = self.rng
        name = rng.choice(("dev", "users", "announce"))
        subject, refs, when = f"[{name}] {_subject(rng)}", [], start
        for _ in range(1 + int(rng.expovariate(1 / 2))):
            who = rng.choice(self.members)
            subj = "Re: " + subject if refs else subject
            to = [f"{name.capitalize()} list <{name}@lists.example>"]
            headers, mid = self.headers(who, to, [], subj, when, refs)
            headers[0] = f"Return-Path: <{name}-bounces+owner=bench.example@lists.example>"
            unsubscribe = [
                f"<mailto:{name}-leave@lists.example>",
                f"<https://lists.example/mailman/options/{name}>",
            ]
            headers += [
                f"List-Id: {name.capitalize()} discussion <{name}.lists.example>",
                _folded("List-Unsubscribe", unsubscribe, ","),
                "Precedence: list",
            ]
            yield self.emit("INBOX", headers, who, when, "S")
            refs.append(mid)
            when += self.gap()
            if when > self.newest:
                return

    def newsletter(self, start: datetime) -> Message:
        sender = _Party("news@news.example", "Example News", "outlook")
        headers, _ = self.headers(sender, [OWNER], [], _subject(self.rng), start, [])
        token = f"{self.rng.getrandbits(96):024x}"
        headers[0] = f"Return-Path: <bounce-{token}@news.example>"
        unsubscribe = [f"<https://news.example/u/{token}>", f"<mailto:unsub-{token}@news.example>"]
        headers += [_folded("List-Unsubscribe", unsubscribe, ","), "Precedence: bulk"]
        return self.emit("INBOX", headers, sender, start, "S")


def messages(count: int, newest: datetime, seed: int = 7) -> Iterator[Message]:
    """(folder, message, time, Maildir flags) for `count` messages over the year before `newest`."""
    rng = random.Random(seed)
    box = _Mailbox(rng, newest)
    span = timedelta(days=365).total_seconds()
    produced = 0
    while produced < count:
        start = newest - timedelta(seconds=span * rng.random())
        for message in box.conversation(start):
            yield message
            produced += 1
            if produced == count:
                return


def write_maildir(root: Path, count: int, newest: datetime, seed: int = 7) -> Generated:
    """Maildir++ under `root` (INBOX in cur/, Sent in .Sent/cur/), files' mtimes set."""
    counts = {"INBOX": 0, "Sent": 0}
    for folder in ("cur", ".Sent/cur", "new", "tmp", ".Sent/new", ".Sent/tmp"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for n, (folder, message, when, flags) in enumerate(messages(count, newest, seed)):
        target = root / ("cur" if folder == "INBOX" else ".Sent/cur")
        path = target / f"{int(when.timestamp())}.M{n}P1.bench:2,{flags}"
        path.write_bytes(message)
        os.utime(path, (when.timestamp(), when.timestamp()))
        counts[folder] += 1
    return Generated(counts["INBOX"], counts["Sent"], newest)


if __name__ == "__main__":
    import sys

    target = Path(sys.argv[1])
    made = write_maildir(target, int(sys.argv[2]), datetime.now(UTC))
    print(f"wrote {made.inbox} INBOX + {made.sent} Sent messages under {target}")
