"""What imap.wire, imap.stream and imap.compress rely on in imapclient and imaplib,
checked on a real Dovecot session.

They (with imap.transport's overrides) are where imaplib's private parts are touched; if
an upgrade of imapclient or of Python changes them, this fails before any scan reads
wrongly.
"""

from __future__ import annotations

import imaplib
import io
from collections.abc import Iterator

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, LoginError

from inboxwatch.imap import stream, transport, wire
from inboxwatch.imap.fetchparse import fast_record
from inboxwatch.imap.headerfetch import FETCH_ITEMS
from inboxwatch.imap.watch import SocketWatch
from tests.conftest import NOW, corpus_dir, mail
from tests.proxy import RecordingProxy


@pytest.fixture
def client(dovecot, mailbox) -> Iterator[IMAPClient]:
    """A plain imapclient session on a mailbox of one message."""
    mailbox.add("INBOX", mail("anna@client.example"), NOW)
    session = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=10)
    session.login(mailbox.user, dovecot.password)
    yield session
    session.logout()


@pytest.mark.dovecot
def test_the_imaplib_parts_wire_relies_on(client):
    imap = wire.connection(client)
    # imapclient keeps the imaplib connection as `_imap`.
    assert isinstance(imap, imaplib.IMAP4)
    # The streamed reader reads imaplib's buffered socket file with read1 and peek.
    assert isinstance(imap.file, io.BufferedReader)
    # It sends its own tagged command: a fresh tag of imaplib's, then `send`.
    tag = imap._new_tag()
    assert isinstance(tag, bytes) and tag != imap._new_tag()
    assert callable(imap.send) and callable(imap.read)
    client.select_folder("INBOX", readonly=True)
    records: list[object] = []
    # Two FETCHes sent before either is answered (pipelined): answered in order.
    fetch = f"UID FETCH 1:* ({' '.join(FETCH_ITEMS)})".encode()
    tags = wire.send(imap, fetch, fetch)
    answered = stream.read_fetch(imap, tags, records.append, 1 << 20)
    assert answered is not None and [s for s, _ in answered.values()] == ["OK", "OK"]
    assert len(records) == 2
    # After the streamed response, imapclient goes on on the same connection.
    assert client.search(["ALL"]) == [1]


class _Counting(io.RawIOBase):
    """A pass-through of a buffered file that counts what is read through it."""

    def __init__(self, source: io.BufferedReader) -> None:
        super().__init__()
        self.source, self.count = source, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        data = self.source.read1(len(buffer))
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)


@pytest.mark.dovecot
def test_imaplib_reads_through_its_file_and_writes_through_send(client):
    """What imap.compress relies on: a `file` put in place of imaplib's carries every read
    after it (lines and literals), and every write goes through `send`."""
    imap = wire.connection(client)
    counting = _Counting(imap.file)
    imap.file = io.BufferedReader(counting)
    written: list[bytes] = []
    send = imap.send
    imap.send = lambda data: written.append(data) or send(data)  # type: ignore[method-assign]
    client.select_folder("INBOX", readonly=True)
    assert client.fetch([1], ["BODY.PEEK[HEADER]"])[1][b"BODY[HEADER]"]  # a literal
    assert counting.count > 100 and any(b"FETCH" in w for w in written)


@pytest.mark.dovecot
def test_literals_are_bounded_in_imaplibs_read(dovecot, mailbox):
    mailbox.add("INBOX", mail("anna@client.example"), NOW)
    watch = SocketWatch("127.0.0.1", 10)
    client = wire.WatchedClient(watch, "127.0.0.1", port=dovecot.port, ssl=False)
    client.login(mailbox.user, dovecot.password)
    imap = wire.connection(client)
    # imaplib reads every literal through `read(size)`: the guard sits there.
    with pytest.raises(IMAPClientAbortError, match="literal"):
        imap.read(transport.MAX_LITERAL + 1)
    client.select_folder("INBOX", readonly=True)
    assert list(client.fetch([1], ["BODY.PEEK[HEADER]"])) == [1]  # small ones pass
    client.logout()


@pytest.mark.dovecot
def test_the_imaplib_parts_the_pipelined_examine_relies_on(client):
    imap = wire.connection(client)
    # Tags registered by hand are read by imaplib's own loop; state is set as select does.
    assert isinstance(imap.tagged_commands, dict) and isinstance(imap.untagged_responses, dict)
    assert callable(imap._command_complete) and imap.state == "AUTH"
    [tag] = wire.send(imap, b"NOOP")
    imap.tagged_commands[tag] = None
    assert imap._command_complete("NOOP", tag)[0] == "OK"


@pytest.mark.dovecot
def test_examine_and_its_search_go_in_one_write_and_a_failure_keeps_the_session(dovecot, mailbox):
    mailbox.add("INBOX", mail("anna@client.example"), NOW)
    mailbox.add("INBOX", mail("bo@client.example", mid="<b@x.example>"), NOW)
    with RecordingProxy(dovecot.port) as proxy:
        watch = SocketWatch("127.0.0.1", 10)
        client = wire.WatchedClient(watch, "127.0.0.1", port=proxy.port, ssl=False, timeout=10)
        client.login(mailbox.user, dovecot.password)
        client.condstore = True
        info, uids = client.examine("INBOX", b"ALL")
        assert uids == [1, 2] and info[b"EXISTS"] == 2 and info[b"HIGHESTMODSEQ"]
        [both] = [c for c in proxy.client_chunks if b" EXAMINE " in c]
        assert b" UID SEARCH ALL\r\n" in both  # the same write: one round trip
        # A folder that is not there: its NO, and the SEARCH's answer read too.
        with pytest.raises(imaplib.IMAP4.error, match="select failed"):
            client.examine("Nowhere", b"ALL")
        assert wire.connection(client).state == "AUTH"
        with pytest.raises(imaplib.IMAP4.error, match="search failed"):
            client.examine("INBOX", b"NOSUCHKEY 1")
        assert client.examine("INBOX", b"UID 2:*")[1] == [2]  # still in step
        assert client.condstore  # a BAD to the SEARCH is not one to CONDSTORE
        client.logout()


@pytest.mark.dovecot
def test_a_saved_search_sends_the_fetch_with_the_examine_and_a_failure_keeps_the_session(
    dovecot, sent_mailbox
):
    """SEARCHRES (RFC 5182): EXAMINE, `UID SEARCH RETURN (SAVE ALL)` and `UID FETCH $` in
    one write; the records of exactly the UIDs found are left for the stream reader.
    Whatever fails, every answer is read and the session stays in step."""
    mailbox = sent_mailbox
    for n in range(3):
        mailbox.add("INBOX", mail(f"p{n}@client.example", mid=f"<p{n}@x.example>"), NOW)
    mailbox.add("Sent", mail("me@x.example"), NOW)
    items = " ".join(FETCH_ITEMS)
    with RecordingProxy(dovecot.port) as proxy:
        watch = SocketWatch("127.0.0.1", 10)
        client = wire.WatchedClient(watch, "127.0.0.1", port=proxy.port, ssl=False, timeout=10)
        client.login(mailbox.user, dovecot.password)
        client.searchres = b"SEARCHRES" in client.capabilities()
        assert client.searchres  # Dovecot offers it
        examined = client.examine_answer(client.examine_send("INBOX", b"UID 2:*", items))
        assert examined.uids == [2, 3] and examined.prefetch is not None
        [write] = [c for c in proxy.client_chunks if b" EXAMINE " in c]
        assert b" UID SEARCH RETURN (SAVE ALL) UID 2:*\r\n" in write
        assert b" UID FETCH $ (" in write  # one round trip for the folder and its records
        got: list[int] = []
        tags = [examined.prefetch.tag]
        answered = stream.read_fetch(
            wire.connection(client), tags, lambda r: got.append(r[0]), 1 << 20
        )
        assert got == [2, 3] and answered == {tags[0]: ("OK", answered[tags[0]][1])}
        # A failed SEARCH: $ is empty, its FETCH's answer is read, the error raised.
        with pytest.raises(imaplib.IMAP4.error, match="search failed"):
            client.examine_answer(client.examine_send("INBOX", b"NOSUCHKEY 1", items))
        # A folder that is not there: the SEARCH's and the FETCH's BAD are read too.
        with pytest.raises(imaplib.IMAP4.error, match="select failed"):
            client.examine_answer(client.examine_send("Nowhere", b"ALL", items))
        # Another folder's size, asked with an EXAMINE, with or without a FETCH: its STATUS
        # goes before the SEARCH, so it is answered before the FETCH starts.
        examined = client.examine_answer(client.examine_send("INBOX", b"ALL", status="Sent"))
        assert examined.uids == [1, 2, 3] and examined.prefetch is None
        assert examined.messages == 1
        asked = client.examine_send("INBOX", b"ALL", items, status="Sent")
        examined = client.examine_answer(asked)
        assert examined.messages == 1 and examined.prefetch is not None
        got.clear()
        tags = [examined.prefetch.tag]
        stream.read_fetch(wire.connection(client), tags, lambda r: got.append(r[0]), 1 << 20)
        assert got == [1, 2, 3]
        assert client.examine("INBOX", b"UID 3:*")[1] == [3]  # still in step
        client.logout()


@pytest.mark.dovecot
@pytest.mark.corpus
def test_the_fast_fetch_parser_reads_the_corpus_as_imapclient_does(dovecot, mailbox):
    """Dovecot's BODYSTRUCTURE, PREVIEW and FLAGS of the corpus's real mail (MIME trees,
    RFC 2231 parameters, 8-bit and odd headers), parsed by imap.fetchparse through
    WatchedClient.fetch, equal imapclient's own parse; and the fast path takes most."""
    corpus = corpus_dir()
    paths = sorted((corpus / "mikel-mail").rglob("*.eml"))
    paths += sorted(p for p in (corpus / "sisimai" / "maildir").rglob("*") if p.is_file())
    mailbox.bulk("INBOX", [(p.read_bytes(), NOW) for p in paths])
    items = ["BODYSTRUCTURE", "PREVIEW", "FLAGS"]
    watch = SocketWatch("127.0.0.1", 30)
    fast = wire.WatchedClient(watch, "127.0.0.1", port=dovecot.port, ssl=False, timeout=30)
    fast.login(mailbox.user, dovecot.password)
    uids = fast.examine("INBOX", b"ALL")[1]
    plain = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=30)
    plain.login(mailbox.user, dovecot.password)
    plain.select_folder("INBOX", readonly=True)
    assert len(uids) == len(paths) > 700
    assert fast.fetch(uids, items) == plain.fetch(uids, items)
    typ, lines = wire.connection(plain).uid("FETCH", "1:*", "(BODYSTRUCTURE PREVIEW FLAGS)")
    taken = [line for line in lines if isinstance(line, bytes) and fast_record(line)]
    assert typ == "OK" and len(taken) > 0.85 * len(uids), (len(taken), len(uids))
    plain.logout()
    fast.logout()


@pytest.mark.dovecot
def test_login_and_list_go_in_one_write_and_a_refused_login_keeps_the_session(
    dovecot, sent_mailbox
):
    with RecordingProxy(dovecot.port) as proxy:
        watch = SocketWatch("127.0.0.1", 10)
        client = wire.WatchedClient(watch, "127.0.0.1", port=proxy.port, ssl=False, timeout=10)
        # A wrong password: LoginError with the server's words, as imapclient's login
        # raises it; the LIST's answer (not logged in) is read, so the session goes on.
        with pytest.raises(LoginError, match="AUTHENTICATIONFAILED"):
            client.login_listing(sent_mailbox.user, "wrong")
        assert wire.connection(client).state == "NONAUTH"
        listing = client.login_listing(sent_mailbox.user, dovecot.password)
        assert wire.connection(client).state == "AUTH"
        assert listing == client.list_folders()
        assert {name for _flags, _delim, name in listing} == {"INBOX", "Sent"}
        both = [c for c in proxy.client_chunks if b" LOGIN " in c]
        assert len(both) == 2 and all(b' LIST "" "*"\r\n' in c for c in both)
        assert b"CONDSTORE" in client.capabilities()  # the LOGIN's, as before
        client.logout()
    # Anything LOGIN cannot carry goes by login(): beyond ASCII, AUTHENTICATE PLAIN.
    other = wire.WatchedClient(watch, "127.0.0.1", port=dovecot.port, ssl=False, timeout=10)
    with pytest.raises(LoginError, match="AUTHENTICATIONFAILED"):  # refused, not a crash
        other.login_listing(sent_mailbox.user, "pässwort")
    with pytest.raises(LoginError):  # a line break: imapclient's login, refused there
        other.login_listing(sent_mailbox.user, dovecot.password + "\r\nX")
    other.logout()
