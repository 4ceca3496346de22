"""One set of expectations for every MailSource: IMAP on a real Dovecot, mbox, Maildir and
the in-memory fake. A source that passes here can stand behind any scan."""

from __future__ import annotations

import hashlib
import mailbox
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from inboxwatch.config import Account
from inboxwatch.core.ports import MailSource, discover_sent
from inboxwatch.core.scan import run_scan
from inboxwatch.errors import InboxwatchError
from inboxwatch.imap.login import Secret
from inboxwatch.imap.source import ImapSource
from inboxwatch.local.source import LocalSource
from inboxwatch.service.plans import local_plan
from tests.conftest import NOW, OWNER, mail
from tests.memory import MemorySource

D = timedelta(days=1)
LOOKBACK = NOW - 30 * D
LIST = {"List-Id": "<dev.lists.example>"}
# (folder, days before NOW, sender, to, subject, Message-ID, In-Reply-To, seen, headers)
MAIL = [
    ("INBOX", 40, "old@client.example", OWNER, "Old", "<old@x>", None, True, {}),
    ("INBOX", 3, "Anna <anna@client.example>", OWNER, "Invoice", "<a1@x>", None, True, {}),
    ("Sent", 2, OWNER, "anna@client.example", "Re: Invoice", "<r1@x>", "<a1@x>", True, {}),
    ("INBOX", 2, "ben@bakery.example", OWNER, "Logo", "<b1@x>", None, False, {}),
    ("INBOX", 1, "list@lists.example", OWNER, "Release", "<l1@x>", None, False, LIST),
]


def messages() -> Iterator[tuple[str, bytes, Any, bool]]:
    for folder, days, sender, to, subject, mid, irt, seen, headers in MAIL:
        when = NOW - days * D
        # The Date header says the same as INTERNALDATE: local mail's clock is its Date.
        raw = mail(sender, to, subject, mid=mid, in_reply_to=irt, date=when, headers=headers)
        yield folder, raw, when, seen


@dataclass
class Kind:
    open: Callable[[], MailSource]
    snapshot: Callable[[], object]  # what reading must leave as it was


def files_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def imap_kind(dovecot: Any, box: Any) -> Kind:
    for folder, raw, when, seen in messages():
        box.add(folder, raw, when, ("\\Seen",) if seen else ())
    account = Account(
        name="c",
        host="127.0.0.1",
        port=dovecot.port,
        security="plain",
        username=box.user,
        addresses=[OWNER],
    )
    return Kind(lambda: ImapSource(account, Secret(dovecot.password)), box.snapshot)


def mbox_kind(tmp_path: Path) -> Kind:
    for name in ("INBOX", "Sent"):
        mailbox.mbox(tmp_path / f"{name}.mbox").close()
    for folder, raw, _when, seen in messages():
        box = mailbox.mbox(tmp_path / f"{folder}.mbox")
        message = mailbox.mboxMessage(raw)
        message.set_flags("RO" if seen else "O")
        box.add(message)
        box.close()
    paths = [tmp_path / "INBOX.mbox", tmp_path / "Sent.mbox"]
    return Kind(lambda: LocalSource(paths), lambda: files_digest(tmp_path))


def maildir_kind(tmp_path: Path) -> Kind:
    root = mailbox.Maildir(tmp_path / "Mail", create=True)
    folders = {"INBOX": root, "Sent": root.add_folder("Sent")}
    for folder, raw, _when, seen in messages():
        message = mailbox.MaildirMessage(raw)
        message.set_subdir("cur")
        message.set_flags("S" if seen else "")
        folders[folder].add(message)
    return Kind(lambda: LocalSource(maildir=tmp_path / "Mail"), lambda: files_digest(tmp_path))


def memory_kind() -> Kind:
    folders: dict[str, list[Any]] = {"INBOX": [], "Sent": []}
    for folder, raw, when, seen in messages():
        folders[folder].append((raw, when, ("\\Seen",) if seen else ()))
    return Kind(lambda: MemorySource(folders), lambda: repr(folders))


@pytest.fixture(params=["imap", "mbox", "maildir", "memory"])
def kind(request: pytest.FixtureRequest, tmp_path: Path) -> Kind:
    if request.param == "imap":
        return imap_kind(
            request.getfixturevalue("dovecot"), request.getfixturevalue("sent_mailbox")
        )
    if request.param == "mbox":
        return mbox_kind(tmp_path)
    if request.param == "maildir":
        return maildir_kind(tmp_path)
    return memory_kind()


@pytest.fixture
def source(kind: Kind) -> Iterator[MailSource]:
    opened = kind.open()
    yield opened
    opened.close()


def test_lists_its_folders_and_the_sent_folder_is_found(source):
    folders = source.list_folders()
    assert {"INBOX", "Sent"} <= {f.name for f in folders}
    assert discover_sent(folders) == ["Sent"]


def test_reads_exactly_what_arrived_since(source):
    inbox = source.fetch_since("INBOX", LOOKBACK)
    sent = source.fetch_since("Sent", LOOKBACK)
    assert sorted(m.message_id for m in inbox.messages) == ["<a1@x>", "<b1@x>", "<l1@x>"]
    assert [m.message_id for m in sent.messages] == ["<r1@x>"]
    assert inbox.failures == sent.failures == []
    later = source.fetch_since("INBOX", NOW - D - timedelta(hours=1))
    assert [m.message_id for m in later.messages] == ["<l1@x>"]


def test_every_source_parses_the_same_facts(source):
    read = {
        m.message_id: m for f in ("INBOX", "Sent") for m in source.fetch_since(f, LOOKBACK).messages
    }
    for folder, days, sender, to, subject, mid, irt, seen, headers in MAIL[1:]:
        meta = read[mid]
        assert meta.folder == folder and meta.subject == subject
        assert meta.sender is not None and meta.sender.address in sender
        assert [a.address for a in meta.to] == [to]
        assert meta.in_reply_to == ((irt,) if irt else ())
        assert meta.received == NOW - days * D
        assert ("\\Seen" in meta.flags) is seen
        assert meta.list_headers is bool(headers)
    assert read["<a1@x>"].sender.name == "Anna"
    uids = [m.uid for m in source.fetch_since("INBOX", LOOKBACK).messages]
    assert len(set(uids)) == len(uids)


def test_progress_never_runs_ahead_of_what_it_expects(source):
    counts = {"expect": 0, "advance": 0}

    class Count:
        def expect(self, n: int) -> None:
            counts["expect"] += n

        def advance(self, n: int) -> None:
            counts["advance"] += n
            assert counts["advance"] <= counts["expect"]

    source.fetch_since("INBOX", LOOKBACK, Count())
    assert counts["expect"] >= 3


def test_the_folder_named_next_reads_alike_whatever_comes_next(source):
    """`then` lets a source prepare the next folder (IMAP sends its EXAMINE behind this
    folder's last FETCH): read next, another folder first, another lookback, a listing or
    a body check first, and nothing read differs."""

    def ids(folder: str, since: Any = LOOKBACK, then: str | None = None) -> list[str | None]:
        return sorted(m.message_id for m in source.fetch_since(folder, since, then=then).messages)

    inbox, sent = ids("INBOX"), ids("Sent")
    assert ids("Sent", then="INBOX") == sent and ids("INBOX") == inbox  # read next
    assert ids("Sent", then="INBOX") == sent and ids("Sent") == sent  # another folder first
    assert ids("Sent", then="INBOX") == sent  # and another lookback:
    assert ids("INBOX", NOW - D - timedelta(hours=1)) == ["<l1@x>"]
    assert ids("Sent", then="INBOX") == sent and {f.name for f in source.list_folders()} >= {
        "INBOX",
        "Sent",
    }
    assert ids("Sent", then="INBOX") == sent
    uids = [m.uid for m in source.fetch_since("INBOX", LOOKBACK).messages]
    assert ids("INBOX", then="Sent") == inbox and source.ask_details("INBOX", uids)().keys() <= set(
        uids
    )
    assert ids("Sent", then="Nowhere") == sent and ids("INBOX") == inbox  # a folder not there


def test_a_missing_folder_is_an_error_that_names_it(source):
    with pytest.raises(InboxwatchError, match="Nowhere"):
        source.fetch_since("Nowhere", LOOKBACK)


def test_reading_changes_nothing(kind):
    before = kind.snapshot()
    opened = kind.open()
    try:
        for folder in ("INBOX", "Sent"):
            opened.fetch_since(folder, NOW - 400 * D)
    finally:
        opened.close()
    assert kind.snapshot() == before


def test_the_same_mail_gets_the_same_verdict_from_every_source(kind):
    plan = local_plan("c", [OWNER], ["INBOX"], [])
    report = run_scan([(plan, kind.open)], NOW, NOW)
    assert report.errors == []
    assert [f.thread_id for f in report.overdue] == ["<b1@x>"]  # Anna was answered
    assert report.accounts[0].sent_folders == ("Sent",)
    assert (report.stats.threads, report.stats.answered, report.stats.overdue) == (3, 1, 1)
    assert report.stats.excluded.get("list") == 1
