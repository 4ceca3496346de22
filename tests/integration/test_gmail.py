"""Gmail's IMAP extension (X-GM-EXT-1), against a scripted server speaking it: the
conversation id (X-GM-THRID) threads a reply whose client dropped its References, the
message id (X-GM-MSGID) makes a message filed under two labels count once even without
a Message-ID, and `folders = ["\\\\All"]` reads All Mail, where a draft is no reply."""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime

from tests.conftest import NOW, OWNER, mail
from tests.integration.test_faults import scripted_config
from tests.scripted_imap import ScriptedImap

WHEN = NOW - timedelta(hours=40)
CAPABILITIES = b"IMAP4rev1 AUTH=PLAIN ENABLE X-GM-EXT-1 SPECIAL-USE"


def header(message: bytes) -> bytes:
    return message.split(b"\r\n\r\n")[0] + b"\r\n\r\n"


def gmail_item(uid: int, message: bytes, msgid: int, thrid: int, flags: str = "\\Seen") -> bytes:
    """A FETCH record in Gmail's order: its ids first, then ours."""
    day, mon, year, clock, zone = format_datetime(WHEN).replace(",", "")[4:].split()
    block = header(message)
    return (
        (
            f"* {uid} FETCH (X-GM-THRID {thrid} X-GM-MSGID {msgid} UID {uid} FLAGS ({flags}) "
            f'INTERNALDATE "{int(day):02d}-{mon}-{year} {clock} {zone}" '
            f"BODY[HEADER.FIELDS (FROM)] {{{len(block)}}}\r\n"
        ).encode()
        + block
        + b")\r\n"
    )


ANNA = mail("Anna <anna@client.example>", subject="Q1", mid="<q1@client.example>")
BO = mail("Bo <bo@other.example>", subject="Q2", mid="<q2@other.example>")
# The reply from a phone: no In-Reply-To or References, and a subject of its own.
REPLY = mail(OWNER, "bo@other.example", "Quick answer", mid="<r2@mydomain.example>")
DRAFT = mail(
    OWNER,
    "anna@client.example",
    "Re: Q1",
    mid="<d1@mydomain.example>",
    in_reply_to="<q1@client.example>",
)
NO_ID = mail("Cy <cy@third.example>", subject="Hi, no Message-ID", mid="")
FOLDERS = {
    "[Gmail]/All Mail": [
        gmail_item(1, ANNA, 11, 1),
        gmail_item(2, BO, 12, 2),
        gmail_item(3, REPLY, 13, 2),
        gmail_item(4, DRAFT, 14, 1, "\\Seen \\Draft"),
        gmail_item(5, NO_ID, 15, 5),
    ],
    "[Gmail]/Sent Mail": [gmail_item(1, REPLY, 13, 2)],
    "Clients": [gmail_item(1, NO_ID, 15, 5)],  # the same message under a second label
}


def gmail() -> ScriptedImap:
    def listing(tag: str, folder: str) -> bytes:
        return (
            b'* LIST (\\HasNoChildren) "/" INBOX\r\n'
            b'* LIST (\\HasNoChildren \\All) "/" "[Gmail]/All Mail"\r\n'
            b'* LIST (\\HasNoChildren \\Sent) "/" "[Gmail]/Sent Mail"\r\n'
            b'* LIST (\\HasNoChildren \\Drafts) "/" "[Gmail]/Drafts"\r\n'
            b'* LIST (\\HasNoChildren) "/" Clients\r\n' + f"{tag} OK done\r\n".encode()
        )

    def search(tag: str, folder: str) -> bytes:
        uids = " ".join(str(n + 1) for n in range(len(FOLDERS.get(folder, []))))
        return f"* SEARCH {uids}\r\n{tag} OK done\r\n".encode()

    def fetch(tag: str, folder: str) -> bytes:
        return b"".join(FOLDERS.get(folder, [])) + f"{tag} OK Success\r\n".encode()

    capability = b"* CAPABILITY " + CAPABILITIES + b"\r\n{tag} OK done\r\n"
    return ScriptedImap(
        {"LIST": listing, "UID SEARCH": search, "UID FETCH": fetch, "CAPABILITY": capability},
        greeting=[b"* OK [CAPABILITY " + CAPABILITIES + b"] Gimap ready\r\n"],
    )


def test_gmail_ids_thread_dedupe_and_all_mail_is_read(run, tmp_path):
    with gmail() as server:
        config = scripted_config(tmp_path, server, addresses=[OWNER])
        # As a user writes it in TOML: a literal string holds the backslash as it is.
        config.write_text(config.read_text() + "folders = ['\\All', 'Clients']\n")
        result = run(
            "scan", "--config", str(config), "--format", "json", "--as-of", NOW.isoformat()
        )
    assert result.code == 1, result.err
    report = result.json()
    assert any("X-GM-MSGID X-GM-THRID" in line for line in server.lines)  # asked for them
    waiting = sorted(entry["correspondent"]["address"] for entry in report["overdue"])
    # Anna: the draft of your answer is no answer. Bo: answered, by Gmail's conversation.
    # Cy: filed under two labels, without a Message-ID: one entry, not two.
    assert waiting == ["anna@client.example", "cy@third.example"]
    assert report["accounts"][0]["folders"] == ["[Gmail]/All Mail", "Clients"]


def test_check_finds_all_mail_by_its_mark(run, tmp_path):
    with gmail() as server:
        config = scripted_config(tmp_path, server, addresses=[OWNER])
        config.write_text(config.read_text() + "folders = ['\\All']\n")
        result = run("check", "--config", str(config))
    assert result.code == 0, result.out
    assert "watching [Gmail]/All Mail; sent folder [Gmail]/Sent Mail" in result.out
