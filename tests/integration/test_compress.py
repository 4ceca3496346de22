"""COMPRESS=DEFLATE (RFC 4978) against a real Dovecot with its imap_zlib plugin: the same
mail read in fewer bytes, over plain and TLS, by the worker too, kept across a running
service's polls; a stream cut or damaged ends in one line and exit 5; `check` says what
`compress` does; and a server without it read as before."""

from __future__ import annotations

import itertools
import tempfile
import zlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from inboxwatch.config import Settings
from inboxwatch.core.scan import run_scan
from inboxwatch.delivery.smtp import StdoutSender
from inboxwatch.imap import compress, headerfetch
from inboxwatch.imap.opener import open_imap
from inboxwatch.service.plans import plan_of
from inboxwatch.service.sync import MemoryCache
from inboxwatch.store.sqlite import SqliteStore
from tests.conftest import NOW, OWNER, Mailbox, mail, write_config
from tests.dovecot import Dovecot, running
from tests.polling import poll_once
from tests.proxy import RecordingProxy

pytestmark = pytest.mark.dovecot
H = timedelta(hours=1)
_users = itertools.count()


@pytest.fixture(scope="module")
def zdovecot(ca) -> Iterator[Dovecot]:
    base = Path(tempfile.mkdtemp(prefix="inboxwatch-zlib-"))
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.private_key_pem.write_to_path(str(base / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(base / "cert.pem"))
    with running(base, cert=base / "cert.pem", key=base / "key.pem", compress=True) as server:
        yield server


@pytest.fixture
def zbox(zdovecot) -> Iterator[Mailbox]:
    box = Mailbox(zdovecot, f"zuser{next(_users)}")
    box.create("Sent")
    seed(box)
    yield box
    box.close()


def seed(box: Mailbox, count: int = 40) -> None:
    box.bulk(
        "INBOX",
        [
            (mail(f"C{n} <c{n}@x.example>", subject=f"Question {n}"), NOW - n * H)
            for n in range(count)
        ],
    )
    box.add("Sent", mail(OWNER, "c1@x.example", subject="Re: Question 1"), NOW - H / 2)


def settings(
    server: Dovecot, user: str, tmp_path: Path, port: int | None = None, **extra
) -> Settings:
    account = {
        "name": "work",
        "host": "127.0.0.1",
        "port": port or server.port,
        "security": "plain",
        "username": user,
        "password": server.password,
        "addresses": [OWNER],
        "lookback": "30d",
        **extra,
    }
    return Settings(accounts=[account], state={"path": str(tmp_path / "state.db")})


def found(report):
    """What a report says of the mail: every list and the totals."""
    return report.overdue, report.waiting, report.awaiting, report.awaiting_soon, report.stats


def audit(config: Settings):
    account = config.accounts[0]
    report = run_scan(
        [(plan_of(account), open_imap(account, Path(tempfile.gettempdir())))], NOW, NOW
    )
    assert not [e for e in report.errors if e.exit_code > 1], report.errors
    return report


def test_a_compressed_audit_reads_the_same_in_fewer_bytes(zdovecot, zbox, tmp_path):
    reports, sizes = [], []
    for wanted in (False, True):
        with RecordingProxy(zdovecot.port) as proxy:
            reports.append(
                audit(settings(zdovecot, zbox.user, tmp_path, proxy.port, compress=wanted))
            )
            sizes.append(proxy.server_bytes)
    plain, deflated = reports
    assert plain.overdue and found(deflated) == found(plain)
    assert deflated.accounts[0].messages == plain.accounts[0].messages == 41
    assert sizes[1] < sizes[0] / 2, sizes  # headers deflate well
    # Asked in the LOGIN's write: no round trip of its own.
    assert any(b" LOGIN " in c and b"COMPRESS DEFLATE" in c for c in proxy.client_chunks)


def test_compression_over_tls_and_through_the_worker(zdovecot, zbox, tmp_path, ca, monkeypatch):
    """The worker logs in on its own connection and compresses its part too (else ~45 %
    of the bytes would go uncompressed); under TLS the stream is deflated inside it."""
    seed(zbox, 300)
    monkeypatch.setattr(headerfetch, "PARALLEL_MIN", 10)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    tls = {"security": "tls", "ca_file": str(ca_file)}
    reports, sizes = [], []
    for wanted in (False, True):
        with RecordingProxy(zdovecot.tls_port) as proxy:
            config = settings(zdovecot, zbox.user, tmp_path, proxy.port, **tls, compress=wanted)
            reports.append(audit(config))
            assert proxy.connections == 2  # the session and its worker
            sizes.append(proxy.server_bytes)
    plain, deflated = reports
    assert plain.overdue and found(deflated) == found(plain)
    assert deflated.accounts[0].messages == plain.accounts[0].messages == 302  # 300 + 2 Sent
    assert sizes[1] < sizes[0] * 0.3, sizes


def test_a_running_service_keeps_its_compressed_session(zdovecot, zbox, tmp_path):
    config = settings(zdovecot, zbox.user, tmp_path, compress=True)
    memory = MemoryCache()
    store = SqliteStore(tmp_path / "state.db")
    try:
        first = poll_once(config, store, StdoutSender(), NOW, memory=memory)
        zbox.add("INBOX", mail("New <new@x.example>", subject="Brand new"), NOW - H / 4)
        second = poll_once(config, store, StdoutSender(), NOW + H, memory=memory)
    finally:
        store.close()
    assert first.fetched == 41 and second.fetched == 1
    assert "Brand new" in {f.subject for f in second.report.overdue + second.report.waiting}


def test_a_server_without_compress_is_read_as_before(dovecot, mailbox, tmp_path):
    mailbox.create("Sent")
    seed(mailbox)
    with RecordingProxy(dovecot.port) as proxy:
        report = audit(settings(dovecot, mailbox.user, tmp_path, proxy.port, compress=True))
    assert report.accounts[0].messages == 41 and report.overdue
    assert b"COMPRESS DEFLATE" in bytes(proxy.client_bytes)  # asked, refused (BAD), went on
    assert b"EXAMINE" in bytes(proxy.client_bytes)  # the rest in clear


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ({"cut_after": 8000}, ("dropped",)),
        # Inflated garbage either breaks zlib at once, or reads as a block still to come
        # and the session waits for it until its deadline.
        ({"mangle_after": 8000}, ("compressed stream is damaged", "did not answer within 3s")),
    ],
)
def test_a_compressed_stream_cut_or_damaged_is_one_line_and_exit_5(
    run, tmp_path, zdovecot, zbox, fault, said
):
    seed(zbox, 300)  # its headers' FETCH runs past the fault, well after COMPRESS's OK
    with RecordingProxy(zdovecot.port, **fault) as proxy:
        config = write_config(
            tmp_path, zdovecot, zbox.user, port=proxy.port, compress=True, timeout="3s"
        )
        result = run("scan", "--config", str(config), "--as-of", NOW.isoformat())
    assert result.code == 5, result.out + result.err
    assert result.err.count("\n") == 1 and "Traceback" not in result.err, result.err
    assert any(words in result.err for words in said), result.err


@pytest.mark.parametrize(
    ("compressing", "wanted", "said"),
    [
        (True, True, "; compressed (COMPRESS=DEFLATE)"),
        (True, False, "; the server offers COMPRESS=DEFLATE (compress = true helps on a slow"),
        (False, True, "; the server does not offer COMPRESS=DEFLATE, so compress = true does"),
    ],
)
def test_check_says_what_compress_does_on_the_server(
    run, tmp_path, zdovecot, zbox, dovecot, sent_mailbox, compressing, wanted, said
):
    server, user = (zdovecot, zbox.user) if compressing else (dovecot, sent_mailbox.user)
    result = run("check", "--config", str(write_config(tmp_path, server, user, compress=wanted)))
    assert result.code == 0, result.out + result.err
    assert said in result.out


def test_check_says_nothing_of_compression_where_it_is_neither_offered_nor_asked(
    run, tmp_path, dovecot, sent_mailbox
):
    result = run("check", "--config", str(write_config(tmp_path, dovecot, sent_mailbox.user)))
    assert result.code == 0 and "ok account work" in result.out
    assert "COMPRESS" not in result.out


class _Trickle:
    """A buffered file's read1 that gives `step` bytes at a time."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step = data, step
        self.closed = False

    def read1(self, size: int) -> bytes:
        chunk, self.data = self.data[: min(size, self.step)], self.data[min(size, self.step) :]
        return chunk

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("step", [1, 7, 1 << 16])
def test_inflating_gives_the_stream_whatever_the_reads(step):
    text = b"".join(b"* %d FETCH (UID %d)\r\n" % (n, n) for n in range(3000))
    deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    data = deflater.compress(text[:1000]) + deflater.flush(zlib.Z_SYNC_FLUSH)
    data += deflater.compress(text[1000:]) + deflater.flush(zlib.Z_SYNC_FLUSH)
    source = _Trickle(data, step)
    reader = compress.Inflating(source)
    out = bytearray()
    buffer = bytearray(333)
    while count := reader.readinto(buffer):
        out += buffer[:count]
    assert bytes(out) == text
    reader.close()
    assert source.closed


def test_a_stream_that_inflates_a_thousandfold_comes_a_megabyte_at_a_time():
    text = bytes(20 << 20)  # 20 MB of zeros: ~20 KB deflated
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    data = deflater.compress(text) + deflater.flush(zlib.Z_SYNC_FLUSH)
    assert len(data) < 64 << 10  # one read of the source
    reader = compress.Inflating(_Trickle(data, 1 << 16))
    buffer = bytearray(64 << 20)
    counts = []
    while count := reader.readinto(buffer):
        counts.append(count)
    assert sum(counts) == len(text) and max(counts) <= compress.OUT


def test_a_damaged_stream_is_an_oserror():
    reader = compress.Inflating(_Trickle(b"\xff\xff\xff\xff not deflate", 64))
    with pytest.raises(OSError, match="compressed stream is damaged"):
        reader.readinto(bytearray(10))
