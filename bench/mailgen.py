"""Generate a realistic mailbox straight into Maildir folders (far faster than IMAP APPEND).

Customers write, the owner replies from Sent (some threads answered, some not),
mailing lists, newsletters, auto-replies; header blocks like real mail
(Received chains, DKIM, MIME), bodies of a few KB, a few large attachments.
Deterministic for a seed. The file's mtime becomes Dovecot's INTERNALDATE.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

OWNER = "owner@bench.example"
WORDS = (
    "invoice order shipping quote design logo meeting schedule contract draft review update "
    "question thanks please regarding attached follow budget timeline project support ticket "
    "account access password delivery refund payment"
).split()


@dataclass(frozen=True)
class Generated:
    inbox: int
    sent: int
    newest: datetime


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


def _dkim(rng: random.Random) -> str:
    sig = "".join(
        rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        for _ in range(340)
    )
    return (
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=client.example; s=s1;\r\n"
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


def _message(rng: random.Random, headers: list[str], when: datetime, big: bool) -> bytes:
    body = _body(rng, int(rng.expovariate(1 / 6000)) + 500)
    head = "\r\n".join([*headers, f"Date: {format_datetime(when)}", "MIME-Version: 1.0"])
    if big:
        blob = "QUJD" * (1024 * 1024 // 4)
        return (
            head + '\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n'
            "Content-Type: text/plain\r\n\r\n" + body + "\r\n--b1\r\nContent-Type: "
            "application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + "\r\n".join(blob[i : i + 76] for i in range(0, len(blob), 76))
            + "\r\n--b1--\r\n"
        ).encode()
    return (head + "\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n").encode()


def _inbound(rng: random.Random, n: int, when: datetime) -> tuple[list[str], str]:
    kind = rng.random()
    mid = f"<{n}.{rng.getrandbits(40):x}@client.example>"
    customer = n % 5000  # each customer writes from one address, about 20 times a year
    sender = f"Customer {customer} <c{customer}@client{customer % 97}.example>"
    subject = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 7))).capitalize()
    headers = [
        f"Return-Path: <c{customer}@client{customer % 97}.example>",
        _received(rng, when),
        _dkim(rng),
        f"Message-ID: {mid}",
        f"From: {sender}",
        f"To: Owner <{OWNER}>",
        f"Subject: {subject}",
    ]
    if kind < 0.15:  # mailing list
        headers += [
            "List-Id: Dev list <dev.lists.example>",
            "List-Unsubscribe: <mailto:leave@lists.example>",
            "Precedence: list",
        ]
    elif kind < 0.20:  # newsletter
        headers += ["List-Unsubscribe: <https://news.example/u>", "Precedence: bulk"]
    elif kind < 0.23:  # auto-reply
        headers[6] = f"Subject: Automatic reply: {subject}"
        headers.append("Auto-Submitted: auto-replied")
    elif rng.random() < 0.2:
        headers.append(f"Cc: Colleague <colleague@client{n % 97}.example>")
    return headers, mid


def messages(count: int, newest: datetime, seed: int = 7) -> Iterator[tuple[str, bytes, datetime]]:
    """(folder, message, time) for `count` messages over the year before `newest`."""
    rng = random.Random(seed)
    span = timedelta(days=365).total_seconds()
    produced = 0
    n = 0
    while produced < count:
        when = newest - timedelta(seconds=span * rng.random())
        headers, mid = _inbound(rng, n, when)
        yield "INBOX", _message(rng, headers, when, big=n % 2000 == 1999), when
        produced += 1
        n += 1
        if produced < count and rng.random() < 0.25 and "Precedence" not in "".join(headers):
            later = when + timedelta(minutes=rng.randint(5, 3000))
            reply = [
                _received(rng, later),
                f"Message-ID: <r{n}.{rng.getrandbits(40):x}@bench.example>",
                f"From: Owner <{OWNER}>",
                headers[4].replace("From:", "To:"),
                f"Subject: Re: {headers[6].split(': ', 1)[1]}",
                f"In-Reply-To: {mid}",
                f"References: {mid}",
            ]
            yield "Sent", _message(rng, reply, min(later, newest), big=False), min(later, newest)
            produced += 1


def write_maildir(root: Path, count: int, newest: datetime, seed: int = 7) -> Generated:
    """Maildir++ under `root` (INBOX in cur/, Sent in .Sent/cur/), files' mtimes set."""
    counts = {"INBOX": 0, "Sent": 0}
    for folder in ("cur", ".Sent/cur", "new", "tmp", ".Sent/new", ".Sent/tmp"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for n, (folder, message, when) in enumerate(messages(count, newest, seed)):
        target = root / ("cur" if folder == "INBOX" else ".Sent/cur")
        path = target / f"{int(when.timestamp())}.M{n}P1.bench:2,S"
        path.write_bytes(message)
        os.utime(path, (when.timestamp(), when.timestamp()))
        counts[folder] += 1
    return Generated(counts["INBOX"], counts["Sent"], newest)


if __name__ == "__main__":
    import sys

    target = Path(sys.argv[1])
    made = write_maildir(target, int(sys.argv[2]), datetime.now(UTC))
    print(f"wrote {made.inbox} INBOX + {made.sent} Sent messages under {target}")
