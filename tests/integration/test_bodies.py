"""Issue 18, items 1 and 2, end to end: closing messages and calendar invitations judged
from a little of the body, through Dovecot (PREVIEW, BODYSTRUCTURE, partial fetches)
and through local mbox; never more than the bound read per message."""

from __future__ import annotations

import contextlib
import json
import mailbox
import re
import time
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import pytest

from inboxwatch.imap.bodyfetch import ask_details, details_answer
from inboxwatch.imap.selection import Selection
from inboxwatch.imap.watch import SocketWatch
from inboxwatch.imap.wire import WatchedClient
from tests.conftest import NOW, OWNER, mail, write_config
from tests.proxy import RecordingProxy

pytestmark = pytest.mark.dovecot
H = timedelta(hours=1)
ANNA, BO = "Anna Keller <anna@client.example>", "Bo Berg <bo@x.example>"
ICS = (
    "BEGIN:VCALENDAR\r\nPRODID:-//Google Inc//Google Calendar 70.9054//EN\r\n"
    "METHOD:{method}\r\nBEGIN:VEVENT\r\nDTSTART:20261210T100000Z\r\n"
    "SUMMARY:Design review\\, round 2\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def message(sender: str, subject: str, mid: str, hours: float, **kw: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, kw.pop("to", OWNER), subject
    msg["Message-ID"], msg["Date"] = mid, format_datetime(NOW - hours * H)
    if "irt" in kw:
        msg["In-Reply-To"] = kw.pop("irt")
    return msg


def reply_text(body: str, charset: str = "utf-8", cte: str | None = None) -> dict:
    return {"body": body, "charset": charset, "cte": cte}


def closing_thread(box, sender: str, tag: str, answer: EmailMessage, hours: float = 40) -> None:
    """The sender asks, the owner answers, then `answer` arrives."""
    asked, answered = NOW - 50 * H, NOW - 45 * H  # in Date too: local mail's clock
    question = mail(sender, subject=f"Q {tag}", mid=f"<q-{tag}@c.example>", date=asked)
    box.add("INBOX", question, asked)
    reply = mail(
        OWNER, sender, f"Re: Q {tag}", mid=f"<r-{tag}@m.example>",
        in_reply_to=f"<q-{tag}@c.example>", date=answered,
    )  # fmt: skip
    box.add("Sent", reply, answered)
    box.add("INBOX", answer.as_bytes(), NOW - hours * H)


def thanks(
    sender: str,
    tag: str,
    text: str,
    subtype: str = "plain",
    cte: str | None = None,
    charset: str = "utf-8",
) -> EmailMessage:
    msg = message(sender, f"Re: Q {tag}", f"<t-{tag}@c.example>", 40, irt=f"<r-{tag}@m.example>")
    msg.set_content(text, subtype=subtype, charset=charset, cte=cte)
    return msg


def google_invite(
    method: str = "REQUEST", subject: str = "Invitation: Design review"
) -> EmailMessage:
    """Google Calendar's shape: multipart/mixed > alternative (plain, html, calendar) + .ics."""
    msg = message("Carla <carla@studio.example>", subject, f"<inv-{method}@google.example>", 30)
    msg.set_content("You have been invited to Design review")
    msg.add_alternative("<p>You have been invited</p>", subtype="html")
    msg.add_alternative(ICS.format(method=method), subtype="calendar", params={"method": method})
    msg.add_attachment(
        ICS.format(method=method).encode(),
        maintype="application",
        subtype="ics",
        filename="invite.ics",
    )
    return msg


def outlook_invite() -> EmailMessage:
    """Outlook's shape: multipart/alternative (plain, html, text/calendar base64)."""
    msg = message("Dan <dan@corp.example>", "Planning", "<inv-outlook@corp.example>", 30)
    msg.set_content("Planning meeting")
    msg.add_alternative("<p>Planning meeting</p>", subtype="html")
    cal = ICS.format(method="REQUEST").replace("Design review\\, round 2", "Planning")
    msg.add_alternative(cal, subtype="calendar", params={"method": "REQUEST"}, cte="base64")
    return msg


def apple_invite() -> EmailMessage:
    """Apple Calendar's shape: multipart/mixed (plain, text/calendar attachment)."""
    msg = message("Eve <eve@icloud.example>", "Invitation: Lunch", "<inv-apple@icloud.example>", 30)
    msg.set_content("Eve has invited you to Lunch")
    cal = ICS.format(method="REQUEST").replace("Design review\\, round 2", "Lunch")
    msg.add_attachment(
        cal.encode(),
        maintype="text",
        subtype="calendar",
        filename="iCal-1.ics",
        params={"method": "REQUEST"},
    )
    return msg


def seed(box) -> None:
    box.add("Sent", mail(OWNER, "x@y.example", subject="Note", date=NOW - 100 * H), NOW - 100 * H)
    closing_thread(
        box,
        ANNA,
        "a",
        thanks(ANNA, "a", "Thank you so much, that fixed it!\n\nOn Mon, Sam wrote:\n> try this?\n"),
    )
    closing_thread(box, BO, "b", thanks(BO, "b", "Thanks, but it still fails"))
    closing_thread(
        box,
        "Jörg <joerg@verlag.example>",
        "c",
        thanks(
            "Jörg <joerg@verlag.example>",
            "c",
            "Danke, passt so. Grüße",
            cte="quoted-printable",
            charset="iso-8859-1",
        ),
    )
    closing_thread(
        box,
        "Lu <lu@x.example>",
        "d",
        thanks(
            "Lu <lu@x.example>",
            "d",
            '<div>Merci beaucoup !</div><div class="gmail_quote">'
            "Le lun., Sam a écrit : Pouvez-vous ?</div>",
            subtype="html",
            cte="base64",
        ),
    )
    with_file = thanks("Mo <mo@x.example>", "e", "Thanks!")
    with_file.add_attachment(
        b"%PDF-1.4", maintype="application", subtype="pdf", filename="signed.pdf"
    )
    closing_thread(box, "Mo <mo@x.example>", "e", with_file)
    for invite in (google_invite(), outlook_invite(), apple_invite()):
        box.add("INBOX", invite.as_bytes(), NOW - 30 * H)
    for method, subject in (("REPLY", "Accepted: Design review"), ("CANCEL", "Canceled: Standup")):
        box.add("INBOX", google_invite(method, subject).as_bytes(), NOW - 30 * H)


def test_closing_messages_and_invitations_through_dovecot(sent_mailbox, scan):
    seed(sent_mailbox)
    data = scan().json()
    overdue = sorted(e["subject"] for e in data["overdue"])
    # Bo's "but it still fails" and Mo's thanks with a signed PDF still need you.
    assert overdue == ["Re: Q b", "Re: Q e"]
    invites = {e["subject"]: e["event"] for e in data["invitations"]}
    assert invites == {
        "Invitation: Design review": {
            "title": "Design review, round 2",
            "start": "20261210T100000Z",
        },
        "Planning": {"title": "Planning", "start": "20261210T100000Z"},
        "Invitation: Lunch": {"title": "Lunch", "start": "20261210T100000Z"},
    }
    assert data["stats"]["excluded"]["closing"] == 3  # Anna (quoted), Jörg (QP), Lu (HTML)
    assert data["stats"]["excluded"]["calendar"] == 2  # the REPLY and the CANCEL
    off = scan(closing_messages=False).json()
    assert sorted(e["subject"] for e in off["overdue"]) == [
        "Re: Q a",
        "Re: Q b",
        "Re: Q c",
        "Re: Q d",
        "Re: Q e",
    ]


def test_closing_messages_and_invitations_in_a_local_mbox(run, tmp_path, sent_mailbox):
    class Box:
        def __init__(self):
            self.boxes = {
                "INBOX": mailbox.mbox(tmp_path / "INBOX.mbox"),
                "Sent": mailbox.mbox(tmp_path / "Sent.mbox"),
            }

        def add(self, folder, raw, when):
            self.boxes[folder].add(raw)

    box = Box()
    seed(box)  # the same mail, on disk
    for each in box.boxes.values():
        each.close()
    result = run(
        "scan", "--format", "json", "--as-of", NOW.isoformat(), "--address", OWNER,
        "--mbox", str(tmp_path / "INBOX.mbox"), "--mbox", str(tmp_path / "Sent.mbox"),
    )  # fmt: skip
    data = result.json()
    assert sorted(e["subject"] for e in data["overdue"]) == ["Re: Q b", "Re: Q e"], result.err
    assert len(data["invitations"]) == 3 and data["stats"]["excluded"]["closing"] == 3


def test_a_scan_spares_the_round_trips_it_can(run, tmp_path, dovecot, sent_mailbox):
    """Each costs 0.1 s at 100 ms RTT. The sent folder is read first, so INBOX is still
    selected when the pending message's body is checked: one EXAMINE a folder. Dovecot's
    greeting lists its capabilities (no CAPABILITY), and EXAMINE's CONDSTORE parameter
    enables CONDSTORE (RFC 7162 3.1: no ENABLE). LIST goes in LOGIN's write."""
    closing_thread(sent_mailbox, ANNA, "once", thanks(ANNA, "once", "Thanks, all sorted!"))
    with RecordingProxy(dovecot.port) as proxy:
        config = write_config(tmp_path, dovecot, sent_mailbox.user, port=proxy.port)
        result = run("scan", "--config", str(config), "--as-of", NOW.isoformat())
        commands = proxy.commands()
    assert result.code == 0, result.err
    assert "PREVIEW" in bytes(proxy.client_bytes).decode()  # the body was checked
    assert commands.count("EXAMINE") == 2, commands
    assert "CAPABILITY" not in commands and "ENABLE" not in commands, commands
    sent = bytes(proxy.client_bytes).decode().split("\r\n")
    examines = [line for line in sent if " EXAMINE " in line]
    assert examines and all(line.endswith(" (CONDSTORE)") for line in examines), examines
    [login] = [chunk for chunk in proxy.client_chunks if b" LOGIN " in chunk]
    assert b' LIST "" "*"\r\n' in login and commands.count("LIST") == 1, commands


def test_the_next_folders_examine_goes_behind_the_last_fetch(run, tmp_path, dovecot, sent_mailbox):
    """A scan reads Sent, then INBOX: INBOX's EXAMINE and SEARCH are sent while Sent's FETCH
    is still being answered (RFC 3501 5.5), not after its end: a round trip less, 0.1 s at
    100 ms RTT. The server's answers are held back 0.1 s a chunk, so "before the end"
    cannot be a race."""
    seed(sent_mailbox)
    with RecordingProxy(dovecot.port, delay=0.1) as proxy:
        config = write_config(tmp_path, dovecot, sent_mailbox.user, port=proxy.port)
        result = run("scan", "--config", str(config), "--as-of", NOW.isoformat())
        events = list(proxy.events)
    assert result.code == 1, result.err
    sent_by_client = [(n, chunk) for n, (side, chunk) in enumerate(events) if side == "client"]
    [fetch_tag] = {  # Sent's FETCH, not INBOX's `UID FETCH $` (one chunk may hold both)
        line.split(b" ")[0]
        for _, chunk in sent_by_client[:3]  # LOGIN+LIST, EXAMINE Sent+SEARCH, its FETCH
        for line in chunk.split(b"\r\n")
        if b" UID FETCH " in line and b" UID FETCH $ " not in line
    }
    examined = next(n for n, chunk in sent_by_client if b'EXAMINE "INBOX"' in chunk)
    fetched = next(
        n
        for n, (side, chunk) in enumerate(events)
        if side == "server" and fetch_tag + b" OK" in chunk
    )
    assert examined < fetched, events[: fetched + 2]
    assert b"UID SEARCH" in events[examined][1]  # the SEARCH with it, in the same write


def test_a_small_next_folder_has_its_fetch_sent_with_its_examine(
    run, tmp_path, dovecot, sent_mailbox, monkeypatch
):
    """With SEARCHRES (RFC 5182), INBOX's EXAMINE, saved SEARCH and `UID FETCH $` go
    behind Sent's FETCH: INBOX's records follow Sent's without a round trip between. Its
    size was asked (STATUS) with Sent's EXAMINE: a folder big enough for a second
    connection is read as before. The report is the one read without it."""
    seed(sent_mailbox)
    with RecordingProxy(dovecot.port) as proxy:
        config = write_config(tmp_path, dovecot, sent_mailbox.user, port=proxy.port)
        result = run(
            "scan", "--config", str(config), "--as-of", NOW.isoformat(), "--format", "json"
        )
        writes = [chunk for side, chunk in proxy.events if side == "client"]
    assert result.code == 1, result.err
    [first] = [w for w in writes if b'EXAMINE "Sent"' in w]
    assert b'STATUS "INBOX" (MESSAGES)' in first and b"UID FETCH $" not in first
    [inbox] = [w for w in writes if b'EXAMINE "INBOX"' in w]
    assert b"UID SEARCH RETURN (SAVE ALL) SINCE " in inbox and b"UID FETCH $ (" in inbox
    # Sent's FETCH, and INBOX's sent with its EXAMINE (the proxy may read them as one chunk)
    assert sum(w.count(b"HEADER.FIELDS") for w in writes) == 2
    # Without it (as for a folder over the worker's threshold): the same report.
    monkeypatch.setattr(Selection, "_fetch", lambda self, folder, search: None)
    with RecordingProxy(dovecot.port) as proxy:
        config = write_config(tmp_path, dovecot, sent_mailbox.user, port=proxy.port)
        again = run("scan", "--config", str(config), "--as-of", NOW.isoformat(), "--format", "json")
        assert b"UID FETCH $" not in bytes(proxy.client_bytes)
    # The same report, but for when it was generated.
    assert again.code == 1 and {**json.loads(again.out), "generated_at": ""} == {
        **json.loads(result.out),
        "generated_at": "",
    }


@pytest.mark.dovecot
def test_the_body_checks_fetch_is_on_the_wire_while_the_scan_goes_on_judging(
    run, tmp_path, dovecot, sent_mailbox, monkeypatch
):
    """The pending messages' BODYSTRUCTURE/PREVIEW FETCH is written as soon as the
    findings are known, before the awaited replies are listed (core.bodies): its answer
    travels meanwhile. The report is the one read with the FETCH sent when needed."""
    import inboxwatch.core.scan as scan_module

    seed(sent_mailbox)
    seen: list[bool] = []
    listing = scan_module.awaiting

    def awaiting(*args, **kwargs):
        # The proxy's thread forwards what was written: given a second to see it.
        deadline = time.monotonic() + 1
        while b"BODYSTRUCTURE" not in bytes(proxy.client_bytes) and time.monotonic() < deadline:
            time.sleep(0.01)
        seen.append(b"BODYSTRUCTURE" in bytes(proxy.client_bytes))
        return listing(*args, **kwargs)

    monkeypatch.setattr(scan_module, "awaiting", awaiting)
    argv = ("scan", "--as-of", NOW.isoformat(), "--format", "json")
    with RecordingProxy(dovecot.port) as proxy:
        result = run(
            *argv,
            "--config",
            str(write_config(tmp_path, dovecot, sent_mailbox.user, port=proxy.port)),
        )
    assert result.code == 1, result.err
    assert seen == [True]
    # Asked only when refine reads them: the same report.
    monkeypatch.setattr(scan_module.Bodies, "ahead", lambda self, findings: None)
    seen.clear()
    with RecordingProxy(dovecot.port) as proxy:
        again = run(
            *argv,
            "--config",
            str(write_config(tmp_path, dovecot, sent_mailbox.user, port=proxy.port)),
        )
        assert b"BODYSTRUCTURE" in bytes(proxy.client_bytes)
    assert seen == [False]
    assert again.code == 1 and {**json.loads(again.out), "generated_at": ""} == {
        **json.loads(result.out),
        "generated_at": "",
    }
    assert json.loads(result.out)["stats"]["excluded"].get("closing")  # the bodies were read


@pytest.mark.dovecot
def test_a_connection_lost_during_the_body_checks_leaves_the_threads_to_their_headers(
    run, tmp_path, dovecot, sent_mailbox
):
    """The connection drops when the body checks' FETCH is sent (its answer is read
    later): the scan still reports, each pending thread judged by its headers alone
    (flagged, not hidden), with one line saying what failed and no traceback."""
    seed(sent_mailbox)
    argv = ("scan", "--as-of", NOW.isoformat(), "--format", "json")
    with RecordingProxy(dovecot.port) as proxy:
        whole = run(
            *argv,
            "--config",
            str(write_config(tmp_path, dovecot, sent_mailbox.user, port=proxy.port)),
        )
    with RecordingProxy(dovecot.port, cut_on=b"BODYSTRUCTURE") as proxy:
        cut = run(
            *argv,
            "--config",
            str(write_config(tmp_path, dovecot, sent_mailbox.user, port=proxy.port)),
        )
    assert whole.code == cut.code == 1, cut.err
    subjects = lambda result: sorted(f["subject"] for f in json.loads(result.out)["overdue"])  # noqa: E731
    # The closing "thanks" the bodies excused is overdue again, as its headers say.
    assert len(subjects(cut)) > len(subjects(whole)) and set(subjects(whole)) < set(subjects(cut))
    assert "reading message bodies in 'INBOX' failed" in cut.err and "judged by headers" in cut.err
    assert "Traceback" not in cut.err


@pytest.mark.dovecot
def test_a_service_reads_each_pending_messages_body_once(tmp_path, dovecot, sent_mailbox):
    """Bodies are kept in the state: a poll after new mail asks only for the new pending
    message's, and a restarted service (nothing in memory) asks for none."""
    from inboxwatch.config import Settings
    from inboxwatch.delivery.smtp import StdoutSender
    from inboxwatch.service.poller import Poller
    from inboxwatch.service.sync import MemoryCache
    from inboxwatch.store.sqlite import SqliteStore

    seed(sent_mailbox)
    with RecordingProxy(dovecot.port) as proxy:

        def poll(poller: Poller, when: datetime) -> tuple[Any, list[bytes]]:
            """The poll's report, and the UID sets of the body FETCHes it sent."""
            before = len(proxy.client_bytes)
            result = poller.poll(when)
            sent = bytes(proxy.client_bytes)[before:]
            assert not result.report.errors
            return result.report, re.findall(rb"UID FETCH ([\d,:]+) \(BODYSTRUCTURE", sent)

        account = {"name": "work", "host": "127.0.0.1", "port": proxy.port, "security": "plain"}
        account |= {
            "username": sent_mailbox.user,
            "password": dovecot.password,
            "addresses": [OWNER],
        }
        config = Settings(accounts=[account], state={"path": str(tmp_path / "s.db")})
        store = SqliteStore(tmp_path / "s.db")
        poller = Poller(config, store, StdoutSender(), memory=MemoryCache())
        assert len(poll(poller, NOW)[1]) == 1  # every pending message's, in one FETCH
        sent_mailbox.add("INBOX", mail("Nia <nia@n.example>", subject="New"), NOW - 30 * H)
        sent_mailbox.client.select_folder("INBOX", readonly=True)
        new = max(sent_mailbox.client.search("ALL"))
        report, asked = poll(poller, NOW)
        assert "New" in {f.subject for f in report.overdue}
        assert asked == [str(new).encode()]
        poller.close()
        restarted = Poller(config, store, StdoutSender(), memory=MemoryCache())
        report, asked = poll(restarted, NOW + H)
        assert asked == [] and "New" in {f.subject for f in report.overdue}
        restarted.close()
        store.close()


@pytest.mark.dovecot
def test_a_fetch_sent_ahead_for_a_folder_not_read_next_is_dropped_whole(dovecot, sent_mailbox):
    """INBOX's records, sent ahead behind Sent's last FETCH, are read and dropped when
    Sent is asked for again instead: none of them is taken for Sent's own (the two
    folders' UIDs are the same numbers)."""
    from inboxwatch.imap.login import Secret
    from inboxwatch.imap.source import ImapSource
    from tests.integration.test_fetchworker import account

    for n in range(3):
        sent_mailbox.add("INBOX", mail(f"in{n}@c.example", mid=f"<in{n}@x>"), NOW - H)
        sent_mailbox.add("Sent", mail(OWNER, to=f"out{n}@c.example", mid=f"<out{n}@x>"), NOW - H)
    since = NOW - timedelta(days=30)
    source = ImapSource(account(dovecot, sent_mailbox.user), Secret(dovecot.password))
    try:
        source.fetch_since("INBOX", since)  # its size is known from here on
        first = source.fetch_since("Sent", since, then="INBOX")  # INBOX's FETCH sent ahead
        again = source.fetch_since("Sent", since)  # not INBOX after all
        inbox = source.fetch_since("INBOX", since)
    finally:
        source.close()
    ids = sorted(m.message_id for m in again.messages)
    assert (
        ids == sorted(m.message_id for m in first.messages) == ["<out0@x>", "<out1@x>", "<out2@x>"]
    )
    assert sorted(m.message_id for m in inbox.messages) == ["<in0@x>", "<in1@x>", "<in2@x>"]


def test_a_partial_fetch_reads_no_more_than_its_bound(dovecot, sent_mailbox):
    """Without PREVIEW, the first text part's first 2 KB, however big the message."""
    big = message(ANNA, "Long", "<big@c.example>", 40)
    big.set_content("Thanks!\n" + "x" * 1_000_000)
    sent_mailbox.add("INBOX", big.as_bytes(), NOW - 40 * H)
    with RecordingProxy(dovecot.port) as proxy:
        watch = SocketWatch("127.0.0.1", 10)
        client = WatchedClient(watch, "127.0.0.1", port=proxy.port, ssl=False, timeout=10)
        client.login(sent_mailbox.user, dovecot.password)
        client.select_folder("INBOX", readonly=True)
        [uid] = client.search("ALL")
        before = proxy.server_bytes

        asked = ask_details(client, [uid], False)
        details = details_answer(client, asked, lambda what: contextlib.nullcontext())
        read = proxy.server_bytes - before
        client.logout()
    assert details[uid].text.startswith("Thanks!") and len(details[uid].text) <= 2048
    assert read < 4096, read  # 2 KB of body and the answers' framing, not 1 MB
    sent = bytes(proxy.client_bytes)
    assert b"BODY.PEEK[1]<0.2048>" in sent and b"BODY[]" not in sent and b"RFC822" not in sent


def test_explain_names_the_closing_message_and_the_invitation(run, tmp_path, dovecot, sent_mailbox):
    from tests.conftest import write_config

    seed(sent_mailbox)
    config = write_config(tmp_path, dovecot, sent_mailbox.user)
    asof = ("--as-of", NOW.isoformat(), "--config", str(config))
    closed = run("explain", "<t-a@c.example>", *asof)
    assert closed.code == 0, closed.err
    assert "closing message: Thank you so much, that fixed it!: needs no e-mail reply" in closed.out
    assert "verdict: answered" in closed.out
    invited = run("explain", "<inv-outlook@corp.example>", *asof)
    assert "invitation: needs no e-mail reply" in invited.out
    assert "verdict: not reported: an invitation to answer in your calendar" in invited.out


def test_the_subject_fallback_end_to_end(sent_mailbox, scan):
    """Issue 18, item 7 through Dovecot: Anna's reply lost its headers and Carl answered
    it (linked); the owner answered later in their own thread. One thread, answered."""
    box = sent_mailbox
    box.add("Sent", mail(OWNER, ANNA, "Plan", mid="<p@m.example>"), NOW - 80 * H)
    box.add("INBOX", mail(ANNA, OWNER, "Re: Plan", mid="<a@c.example>"), NOW - 60 * H)
    box.add(
        "INBOX",
        mail(
            "Carl <carl@x.example>",
            OWNER,
            "Re: Plan",
            mid="<c@x.example>",
            in_reply_to="<a@c.example>",
        ),
        NOW - 58 * H,
    )
    box.add(
        "Sent",
        mail(OWNER, ANNA, "Re: Plan", mid="<o@m.example>", in_reply_to="<p@m.example>"),
        NOW - 50 * H,
    )
    data = scan().json()
    assert data["overdue"] == [] and data["accounts"][0]["threads"] == 1
