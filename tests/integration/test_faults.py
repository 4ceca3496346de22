"""Fault injection: network faults through a proxy to the real Dovecot, and the answers only
a scripted server gives (throttling, connection limits, huge literals, malformed FETCH, BYE)."""

from __future__ import annotations

import re
import resource
import time
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from inboxwatch.config import Settings
from inboxwatch.service.backoff import AuthBlock
from inboxwatch.store.sqlite import SqliteStore
from tests.conftest import NOW, OWNER, mail, write_config
from tests.integration.test_service import Recorder, seed, settings_for
from tests.polling import poll_once
from tests.proxy import RecordingProxy
from tests.scripted_imap import DEFAULTS, ScriptedImap, fetch_item, inbound

pytestmark = pytest.mark.dovecot
H = timedelta(hours=1)
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def scripted_account(server, **extra):
    return {
        "name": "work",
        "host": "127.0.0.1",
        "port": server.port,
        "security": "plain",
        "username": "me@mydomain.example",
        "password": "pw",
        "timeout": "5s",
        **extra,
    }


def scripted_config(tmp_path, server, **extra):
    values = scripted_account(server, **extra)
    path = tmp_path / "scripted.toml"
    path.write_text(
        "[[accounts]]\n"
        + "".join(
            f'{k} = "{v}"\n' if isinstance(v, str) else f"{k} = {v}\n" for k, v in values.items()
        )
    )
    path.chmod(0o600)  # it holds the password
    return path


def one_line(result):
    assert result.err.count("\n") == 1 and "Traceback" not in result.err, result.err
    return result.err


# --- answers only a scripted server gives -------------------------------------------------


def test_microsoft_365_throttling_is_transient_and_honoured(run, tmp_path):
    throttle = b"{tag} BAD Request is throttled. Suggested Backoff Time: 1800000 milliseconds\r\n"
    with ScriptedImap({"UID SEARCH": throttle}) as server:
        result = run("scan", "--config", str(scripted_config(tmp_path, server)))
        assert result.code == 5
        assert "throttling" in one_line(result) and "1800s" in result.err
        settings = Settings(
            accounts=[scripted_account(server)], state={"path": str(tmp_path / "s.db")}
        )
        store = SqliteStore(tmp_path / "s.db")
        poll_once(settings, store, Recorder(), T0)
        logins = sum("LOGIN" in line for line in server.lines)
        # Exponential backoff alone would retry after one 15-minute interval; the server
        # asked for 30 minutes, so at +20 minutes the account is still left alone.
        later = poll_once(settings, store, Recorder(), T0 + 20 * timedelta(minutes=1))
        assert sum("LOGIN" in line for line in server.lines) == logins
        assert "backing off" in later.report.errors[0].message
        store.close()


def test_gmail_connection_limit_is_not_a_bad_password(run, tmp_path):
    alert = b"{tag} NO [ALERT] Too many simultaneous connections. (Failure)\r\n"
    with ScriptedImap({"LOGIN": alert}) as server:
        result = run("scan", "--config", str(scripted_config(tmp_path, server)))
    assert result.code == 5 and "too many connections" in one_line(result)


def measured_scan(run, tmp_path, fetch_answer):
    """A scan whose UID FETCH gets `fetch_answer`: its result, seconds and the KiB the
    test process's peak memory grew by."""
    with ScriptedImap({"UID FETCH": fetch_answer}) as server:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.monotonic()
        result = run("scan", "--config", str(scripted_config(tmp_path, server)))
        grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    return result, time.monotonic() - started, grown_kib


def test_huge_announced_literal_is_refused_with_bounded_memory(run, tmp_path):
    huge = b"* 1 FETCH (UID 1 BODY[HEADER.FIELDS (FROM)] {2000000000}\r\nFrom: a@b\r\n"
    result, seconds, grown_kib = measured_scan(run, tmp_path, huge)
    assert result.code == 5 and "refusing to read it" in one_line(result)
    assert seconds < 10
    assert grown_kib < 100 * 1024  # far below the 2 GB announced


@pytest.mark.parametrize(
    "answer",
    [
        b"* OK [ALERT] {2000000000}\r\n",  # an over-limit literal in the LOGIN answer
        b"{tag} NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)\r\n",
    ],
)
def test_only_the_servers_refusal_of_login_is_a_wrong_password(run, tmp_path, answer):
    with ScriptedImap({"LOGIN": answer}) as server:
        result = run("scan", "--config", str(scripted_config(tmp_path, server)))
    if b"NO" in answer:
        assert result.code == 4 and "check username and password" in one_line(result)
    else:
        assert result.code == 5 and "refusing to read it" in one_line(result)


def endless(head: bytes, seconds: float = 20.0):
    """`head`, then megabytes of blanks without a line end, until the client hangs up
    (or `seconds` pass: a bounded loop)."""
    blanks = b" " * (1 << 20)

    def answer(tag: str, folder: str):
        yield head
        stop = time.monotonic() + seconds
        while time.monotonic() < stop:
            yield blanks

    return answer


@pytest.mark.parametrize(
    "head",
    [
        b"* 1 FETCH (UID 1 FLAGS (",  # a FETCH line that never ends
        b"* 1 FETCH (UID 1 BODY[HEADER.FIELDS (FROM)] {12}\r\nFrom: a@b\r\n",  # after a literal
    ],
)
def test_an_endless_fetch_response_is_cut_with_bounded_memory(run, tmp_path, head):
    result, seconds, grown_kib = measured_scan(run, tmp_path, endless(head))
    assert result.code == 5 and "line" in one_line(result)
    assert seconds < 10
    assert grown_kib < 64 * 1024  # the server sends ~1 GB a second until cut


def scan_json(run, tmp_path, server):
    """`scan --format json` against a scripted server, judged as of NOW."""
    config = scripted_config(tmp_path, server)
    return run("scan", "--format", "json", "--as-of", NOW.isoformat(), "--config", str(config))


def test_one_malformed_fetch_batch_is_reported_and_the_rest_goes_on(run, tmp_path):
    def fetch(tag: str, folder: str) -> bytes:
        from tests.scripted_imap import sent

        if folder == "INBOX":
            return f"* 1 FETCH (UID 1 FLAGS (\\Seen INTERNALDATE\r\n{tag} OK done\r\n".encode()
        return sent(1) + f"{tag} OK done\r\n".encode()

    with ScriptedImap({"UID FETCH": fetch}) as server:
        result = scan_json(run, tmp_path, server)
    report = result.json()
    assert result.code == 0, result.err
    parse_errors = [e for e in report["errors"] if e["kind"] == "parse"]
    assert [e["uid"] for e in parse_errors] == [1, 2]
    assert "malformed FETCH" in parse_errors[0]["message"]
    assert report["accounts"][0]["messages"] == 1  # the Sent folder was still read


def test_bye_mid_session_is_a_transient_error(run, tmp_path):
    with ScriptedImap({"UID FETCH": b"* BYE Server shutting down\r\n"}) as server:
        result = run("scan", "--config", str(scripted_config(tmp_path, server)))
    assert result.code == 5 and "dropped" in one_line(result)


# --- network faults between inboxwatch and the real Dovecot ------------------------------


@pytest.mark.parametrize("fault", [{"cut_on": b"UID FETCH"}, {"cut_after": 2000}])
def test_connection_cut_mid_fetch_exits_5_with_one_line(
    dovecot, sent_mailbox, run, tmp_path, fault
):
    seed(sent_mailbox, NOW)
    with RecordingProxy(dovecot.port, **fault) as proxy:
        config = write_config(tmp_path, dovecot, sent_mailbox.user, port=proxy.port)
        result = run("scan", "--config", str(config))
    assert result.code == 5 and "dropped" in one_line(result)


def test_connection_cut_during_login_is_transient_not_a_wrong_password(
    dovecot, sent_mailbox, run, tmp_path
):
    # A server restart or a load balancer dropping the link while LOGIN is in flight:
    # imapclient reports every failure of LOGIN as LoginError, a cut one too.
    with RecordingProxy(dovecot.port, cut_on=b"LOGIN") as proxy:
        config = write_config(tmp_path, dovecot, sent_mailbox.user, port=proxy.port)
        result = run("scan", "--config", str(config))
    assert result.code == 5 and "dropped" in one_line(result)
    assert "password" not in one_line(result)


def test_a_service_keeps_polling_an_account_whose_login_was_cut(dovecot, sent_mailbox, tmp_path):
    seed(sent_mailbox)
    with RecordingProxy(dovecot.port, cut_on=b"LOGIN", faulty_connections=1) as proxy:
        settings = settings_for(dovecot, sent_mailbox.user, tmp_path, port=proxy.port)
        store = SqliteStore(settings.state.path_resolved())
        blocked: dict = {}
        cut = poll_once(settings, store, Recorder(), T0, blocked=blocked)
        assert cut.report.errors[0].exit_code == 5 and blocked == {}
        good = poll_once(settings, store, Recorder(), T0 + H, blocked=blocked)
        store.close()
    assert not good.report.errors and len(good.report.overdue) == 3


def test_stalled_server_gives_up_within_the_timeout(dovecot, sent_mailbox, run, tmp_path):
    seed(sent_mailbox, NOW)
    with RecordingProxy(dovecot.port, stall_on=b"UID FETCH") as proxy:
        config = write_config(tmp_path, dovecot, sent_mailbox.user, port=proxy.port, timeout="2s")
        started = time.monotonic()
        result = run("scan", "--config", str(config))
    assert result.code == 5 and "did not answer within 2s" in one_line(result)
    assert time.monotonic() - started < 8


def test_service_survives_a_cut_poll_and_converges(dovecot, sent_mailbox, tmp_path):
    seed(sent_mailbox)
    with RecordingProxy(dovecot.port, cut_on=b"UID FETCH", faulty_connections=1) as proxy:
        settings = settings_for(dovecot, sent_mailbox.user, tmp_path, port=proxy.port)
        store = SqliteStore(settings.state.path_resolved())
        cut = poll_once(settings, store, Recorder(), T0)
        assert cut.report.errors[0].exit_code == 5 and cut.digest is None
        assert store.messages("work", "INBOX") == {}  # nothing half-written
        good = poll_once(settings, store, Recorder(), T0 + H)  # after the backoff interval
        store.close()
    fresh_settings = settings_for(dovecot, sent_mailbox.user, tmp_path / "fresh")
    fresh_store = SqliteStore(fresh_settings.state.path_resolved())
    fresh = poll_once(fresh_settings, fresh_store, Recorder(), T0 + H)
    fresh_store.close()
    assert [f.thread_id for f in good.report.overdue] == [f.thread_id for f in fresh.report.overdue]
    assert len(good.report.overdue) == 3 and good.digest is not None


def test_wrong_password_is_not_retried_until_it_changes(dovecot, sent_mailbox, tmp_path):
    seed(sent_mailbox)
    with RecordingProxy(dovecot.port) as proxy:
        good = settings_for(dovecot, sent_mailbox.user, tmp_path, port=proxy.port)
        bad = good.model_copy(
            update={
                "accounts": [good.accounts[0].model_copy(update={"password": SecretStr("wrong")})]
            }
        )
        store = SqliteStore(bad.state.path_resolved())
        blocked: dict[str, AuthBlock] = {}
        first = poll_once(bad, store, Recorder(), T0, blocked=blocked)
        assert first.report.errors[0].exit_code == 4 and "work" in blocked
        attempts = proxy.connections
        recorder = Recorder()
        for hour in range(1, 6):  # hours pass: no retry storm, not even one retry
            poll_once(bad, store, recorder, T0 + hour * H, blocked=blocked)
        assert proxy.connections == attempts
        assert not recorder.sent  # no account could be read: no digest of warnings only
        fixed = poll_once(good, store, recorder, T0 + 6 * H, blocked=blocked)
        assert proxy.connections == attempts + 1 and not fixed.report.errors
        store.close()


def test_mailbox_changes_converge_without_false_alarms(dovecot, sent_mailbox, tmp_path):
    seed(sent_mailbox)
    settings = settings_for(dovecot, sent_mailbox.user, tmp_path)
    store = SqliteStore(settings.state.path_resolved())
    poll_once(settings, store, Recorder(), T0)
    client = sent_mailbox.client
    # The Sent folder renamed away: no sent folder any more, so nothing is flagged.
    client.rename_folder("Sent", "Old sent")
    renamed = poll_once(settings, store, Recorder(), T0 + H)
    assert renamed.report.overdue == [] and renamed.report.errors[0].kind == "coverage"
    client.rename_folder("Old sent", "Sent")
    # INBOX deleted and recreated: UID 1 is reused for another message.
    client.select_folder("INBOX")
    client.delete_messages(client.search(["ALL"]))
    client.expunge()
    client.unselect_folder()
    sent_mailbox.add(
        "INBOX", mail("Bo <bo@x.example>", subject="Fresh", mid="<f@x.example>"), T0 - 30 * H
    )
    # UIDs renumbered: Dovecot's uidlist removed, the server reassigns UIDs.
    uidlist = dovecot.base / "mail" / sent_mailbox.user / "dovecot-uidlist"
    uidlist.unlink(missing_ok=True)
    after = poll_once(settings, store, Recorder(), T0 + 2 * H)
    assert [f.subject for f in after.report.overdue] == ["Fresh"]
    assert len({f.thread_id for f in after.report.overdue}) == len(after.report.overdue)
    store.close()


# --- SMTP faults at digest time ----------------------------------------------------------


def test_connection_dropped_after_data_resends_with_the_same_message_id(
    ca, dovecot, sent_mailbox, tmp_path
):
    from inboxwatch.delivery.smtp import SmtpSender
    from tests.smtp import smtp_server

    seed(sent_mailbox)
    with smtp_server(ca, "plain", drop_first=1) as (handler, port):
        settings = settings_for(dovecot, sent_mailbox.user, tmp_path, smtp_port=port)
        settings = settings.model_copy(
            update={"smtp": settings.smtp.model_copy(update={"retries": 2})}
        )
        store = SqliteStore(settings.state.path_resolved())
        sender = SmtpSender(settings.smtp, delays=(0, 0))
        result = poll_once(settings, store, sender, T0)
        assert result.digest == "2026-11-24T08:00@Europe/Berlin"
        assert store.digest(result.digest)[0] == "sent"
        store.close()
    first, second = handler.received
    assert first["Message-ID"] == second["Message-ID"]  # a duplicate the client can spot


def test_the_next_digest_says_an_account_cannot_log_in(dovecot, sent_mailbox, tmp_path):
    seed(sent_mailbox)
    good = settings_for(dovecot, sent_mailbox.user, tmp_path)
    broken = good.accounts[0].model_copy(update={"name": "old", "password": SecretStr("nope")})
    settings = good.model_copy(update={"accounts": [*good.accounts, broken]})
    store = SqliteStore(settings.state.path_resolved())
    recorder = Recorder()
    blocked: dict[str, AuthBlock] = {}
    poll_once(settings, store, Recorder(), T0 - 3 * H, blocked=blocked)  # before 08:00 UTC+1
    poll_once(settings, store, recorder, T0, blocked=blocked)
    store.close()
    [digest] = recorder.sent
    text = digest.get_body(("plain",)).get_content()
    assert "old: login to 127.0.0.1 failed" in text
    assert "not retried until the password, sign-in or config changes" in text


def test_mail_appended_and_expunged_during_a_poll(dovecot, sent_mailbox, tmp_path):
    import threading

    from imapclient import IMAPClient

    seed(sent_mailbox)
    for n in range(100):
        sent_mailbox.add("INBOX", mail("Bo <bo@x.example>", subject=f"B{n}"), T0 - 30 * H)
    other = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False)
    other.login(sent_mailbox.user, dovecot.password)

    def meddle() -> None:  # another client changes the folder while the poll reads it
        other.select_folder("INBOX")
        other.delete_messages([1, 2, 3])
        other.expunge()
        other.append("INBOX", mail("Cy <cy@x.example>", subject="Late"), msg_time=T0 - 26 * H)

    with RecordingProxy(dovecot.port, delay=0.05) as proxy:
        settings = settings_for(dovecot, sent_mailbox.user, tmp_path, port=proxy.port)
        store = SqliteStore(settings.state.path_resolved())
        wait = threading.Thread(
            target=lambda: (
                [time.sleep(0.02) for _ in iter(lambda: b"UID FETCH" in proxy.client_bytes, True)],
                meddle(),
            )
        )
        wait.start()
        during = poll_once(settings, store, Recorder(), T0)
        wait.join(timeout=20)
        after = poll_once(settings, store, Recorder(), T0 + H)
        store.close()
    other.logout()
    assert not [e for e in during.report.errors if e.kind != "parse"]
    fresh_settings = settings_for(dovecot, sent_mailbox.user, tmp_path / "fresh")
    fresh_store = SqliteStore(fresh_settings.state.path_resolved())
    fresh = poll_once(fresh_settings, fresh_store, Recorder(), T0 + H)
    fresh_store.close()
    assert sorted(f.subject for f in after.report.overdue) == sorted(
        f.subject for f in fresh.report.overdue
    )
    assert "Late" in {f.subject for f in after.report.overdue}
    assert len(after.report.overdue) == 101  # 3 + 100 seeded, 3 expunged, 1 late


def test_folder_deleted_and_recreated_reuses_uid_1_without_confusion(
    dovecot, sent_mailbox, tmp_path
):
    sent_mailbox.create("Support")
    sent_mailbox.add("Sent", mail(OWNER, "x@y.example"), T0 - 72 * H)
    sent_mailbox.add(
        "Support",
        mail("Anna <anna@client.example>", subject="Old question", mid="<old@c.example>"),
        T0 - 40 * H,
    )
    settings = settings_for(dovecot, sent_mailbox.user, tmp_path)
    settings = settings.model_copy(
        update={
            "accounts": [settings.accounts[0].model_copy(update={"folders": ["INBOX", "Support"]})]
        }
    )
    store = SqliteStore(settings.state.path_resolved())
    first = poll_once(settings, store, Recorder(), T0)
    assert [f.subject for f in first.report.overdue] == ["Old question"]
    before = store.folder("work", "Support")
    sent_mailbox.client.delete_folder("Support")
    sent_mailbox.create("Support")
    sent_mailbox.add(
        "Support",
        mail("Bo <bo@x.example>", subject="New question", mid="<new@x.example>"),
        T0 - 30 * H,
    )
    after = poll_once(settings, store, Recorder(), T0 + H)
    rebuilt = store.folder("work", "Support")
    store.close()
    assert rebuilt is not None and before is not None
    assert rebuilt.uidvalidity != before.uidvalidity  # a new folder: the cache was rebuilt
    assert [f.subject for f in after.report.overdue] == ["New question"]
    assert after.report.overdue[0].uids == (1,) and after.fetched == 1


def test_a_server_the_stream_reader_cannot_take_is_asked_once_per_batch(run, tmp_path):
    """An unsolicited FETCH among the answers (valid IMAP, Dovecot sends one when another
    session changes a flag; not what the streamed reader takes): the answer is read the
    generic way and the session stops streaming, so no later batch is fetched twice."""
    from tests.scripted_imap import inbound, sent

    def fetch(tag: str, folder: str) -> bytes:
        body = inbound(1) + inbound(2) if folder == "INBOX" else sent(1)
        return b"* 1 FETCH (FLAGS (\\Seen))\r\n" + body + f"{tag} OK done\r\n".encode()

    with ScriptedImap({"UID FETCH": fetch}) as server:
        result = scan_json(run, tmp_path, server)
        headers = [line for line in server.lines if "HEADER.FIELDS" in line.upper()]
    assert result.code in (0, 1), result.err
    assert result.json()["accounts"][0]["messages"] == 3
    assert len(headers) == 3, headers  # INBOX streamed then generic; Sent generic only


def test_an_impossible_internaldate_does_not_end_the_scan(run, tmp_path):
    """Year 1 at +01:00 is before datetime's range once in UTC: the streamed reader declines
    the record instead of failing the scan, and the generic parser decides."""
    from tests.scripted_imap import inbound, sent

    def fetch(tag: str, folder: str) -> bytes:
        if folder != "INBOX":
            return sent(1) + f"{tag} OK done\r\n".encode()
        odd = re.sub(
            rb'INTERNALDATE "[^"]*"', b'INTERNALDATE "01-Jan-0001 00:00:00 +0100"', inbound(2)
        )
        return inbound(1) + odd + f"{tag} OK done\r\n".encode()

    with ScriptedImap({"UID FETCH": fetch}) as server:
        result = scan_json(run, tmp_path, server)
    assert result.code == 0, result.err  # not 70: no traceback
    report = result.json()
    # Q1 is read (waiting: it arrived NOW); the year-1 message is outside the lookback.
    assert report["accounts"][0]["messages"] == 2 and report["stats"]["pending"] == 1


def test_a_server_refusing_the_condstore_examine_parameter_is_read_without_it():
    """RFC 7162 3.1 makes `EXAMINE x (CONDSTORE)` part of CONDSTORE; a server that offers
    CONDSTORE and answers BAD to it is read with plain EXAMINEs (no HIGHESTMODSEQ)."""
    from inboxwatch.config import Account
    from inboxwatch.imap.login import Secret
    from inboxwatch.imap.source import ImapSource

    def examine(tag: str, folder: str) -> bytes:
        if "CONDSTORE" in folder:
            return f"{tag} BAD unknown parameter\r\n".encode()
        return DEFAULTS["EXAMINE"].replace(b"{tag}", tag.encode())

    capability = b"* CAPABILITY IMAP4rev1 AUTH=PLAIN ENABLE CONDSTORE\r\n{tag} OK done\r\n"
    with ScriptedImap({"EXAMINE": examine, "CAPABILITY": capability}) as server:
        source = ImapSource(Account(**scripted_account(server)), Secret("pw"))
        try:
            scan = source.fetch_since("INBOX", NOW - timedelta(days=30))
            again = source.examine("Sent")
        finally:
            source.close()
        examines = [line for line in server.lines if " EXAMINE " in line]
    assert [m.uid for m in scan.messages] == [1, 2] and again.modseq is None
    assert ["CONDSTORE" in line for line in examines] == [True, False, False], examines


@pytest.mark.parametrize("amiss", ["fetch", "esearch", "early"])
def test_a_server_whose_saved_search_goes_amiss_costs_time_not_messages(run, tmp_path, amiss):
    """SEARCHRES (RFC 5182) sends INBOX's FETCH `$` with its EXAMINE. A server whose `$`
    leaves out a message its ESEARCH named (`fetch`), or that gives no ESEARCH answer
    (`esearch`), still has every message read: the missing one by UID, or the folder
    asked again without saving. One that writes a record before the SEARCH's answer
    (`early`, which imaplib keeps) has it taken from there, not asked for again."""
    offered = b"IMAP4rev1 AUTH=PLAIN ENABLE ESEARCH SEARCHRES"
    lines: list[str] = []

    def search(tag: str, folder: str) -> bytes:
        if "RETURN (SAVE ALL)" not in lines[-1]:
            return DEFAULTS["UID SEARCH"].replace(b"{tag}", tag.encode())
        said = f'* ESEARCH (TAG "{tag}") UID ALL 1:2\r\n' if amiss != "esearch" else ""
        ahead = inbound(1) if amiss == "early" else b""
        return ahead + f"{said}{tag} OK Search completed\r\n".encode()

    def fetch(tag: str, folder: str) -> bytes:
        records = ScriptedImap._fetch(tag, folder)
        if "FETCH $ " in lines[-1] and folder == "INBOX":  # one of Q1 and Q2
            record = inbound(2) if amiss == "early" else inbound(1)
            return record + f"{tag} OK Fetch completed\r\n".encode()
        return records

    script = {
        "CAPABILITY": b"* CAPABILITY " + offered + b"\r\n{tag} OK done\r\n",
        "STATUS": b'* STATUS "INBOX" (MESSAGES 2)\r\n{tag} OK Status completed\r\n',
        "UID SEARCH": search,
        "UID FETCH": fetch,
    }
    with ScriptedImap(script, [b"* OK [CAPABILITY " + offered + b"] ready\r\n"]) as server:
        lines = server.lines
        result = run("scan", "--config", str(scripted_config(tmp_path, server)))
    assert result.code == 1 and "Q1" in result.out and "Q2" in result.out, result.err
    assert any(" UID FETCH $ " in line for line in server.lines)  # the path was taken
    if amiss == "early":  # Sent's header FETCH and INBOX's `$`, and no other
        headers = [line for line in server.lines if "HEADER.FIELDS" in line]
        assert len(headers) == 2, headers


def test_a_server_refusing_the_condstore_parameter_is_read_without_it(run, tmp_path):
    """RFC 7162 3.1 lets EXAMINE's CONDSTORE parameter enable CONDSTORE; a server that
    offers it yet answers the parameter with BAD is read without it: on a scan's path
    (EXAMINE + SEARCH) and on the service's quick check, whose EXAMINEs go in one write
    and are sent again, without it, once all their answers are read."""

    def examine(tag: str, folder: str) -> bytes:
        if folder.endswith(" (CONDSTORE)"):
            return f"{tag} BAD Unknown EXAMINE parameter\r\n".encode()
        return DEFAULTS["EXAMINE"].replace(b"{tag}", tag.encode())

    offered = b"IMAP4rev1 AUTH=PLAIN ENABLE CONDSTORE"
    script = {
        "EXAMINE": examine,
        "CAPABILITY": b"* CAPABILITY " + offered + b"\r\n{tag} OK done\r\n",
    }
    with ScriptedImap(script, [b"* OK [CAPABILITY " + offered + b"] ready\r\n"]) as server:
        result = run("scan", "--config", str(scripted_config(tmp_path, server)))
        assert result.code == 1 and "Q1" in result.out, result.err
        settings = Settings(
            accounts=[scripted_account(server)], state={"path": str(tmp_path / "s.db")}
        )
        store = SqliteStore(tmp_path / "s.db")
        first = poll_once(settings, store, Recorder(), T0)
        read = len(server.lines)
        again = poll_once(
            settings, store, Recorder(), T0 + timedelta(hours=1), previous=first.report
        )
        checked = [line.split(" ", 1)[1] for line in server.lines[read:] if " EXAMINE " in line]
    assert not first.report.errors and not again.report.errors and again.fetched == 0
    # Without HIGHESTMODSEQ the check cannot rule out a flag change: the poll reads on.
    assert checked[:4] == [
        'EXAMINE "INBOX" (CONDSTORE)', 'EXAMINE "Sent" (CONDSTORE)',
        'EXAMINE "INBOX"', 'EXAMINE "Sent"',
    ], checked  # fmt: skip


QRESYNC_OFFERED = b"IMAP4rev1 AUTH=PLAIN ENABLE CONDSTORE QRESYNC"


def qresync_imap(examine, greeting: bytes = QRESYNC_OFFERED, **more) -> ScriptedImap:
    """A scripted server that offers QRESYNC and enables it; `greeting`: the capabilities
    its greeting lists (after login it lists QRESYNC_OFFERED)."""
    script = {
        "EXAMINE": examine,
        "ENABLE": b"* ENABLED QRESYNC\r\n{tag} OK Enabled\r\n",
        "CAPABILITY": b"* CAPABILITY " + QRESYNC_OFFERED + b"\r\n{tag} OK done\r\n",
        **more,
    }
    return ScriptedImap(script, [b"* OK [CAPABILITY " + greeting + b"] ready\r\n"])


def kept_polls(server, tmp_path, between=lambda: None):
    """A running service's first two polls (its session kept between them), a day after the
    scripted mail came: both results, how many lines the server had read before the
    second, and INBOX's cache after it."""
    from inboxwatch.service.poller import Poller

    settings = Settings(accounts=[scripted_account(server)], state={"path": str(tmp_path / "s.db")})
    store = SqliteStore(tmp_path / "s.db")
    poller = Poller(settings, store, Recorder())
    try:
        first = poller.poll(NOW + timedelta(days=2))
        read = len(server.lines)
        between()
        again = poller.poll(NOW + timedelta(days=2, hours=1))
        return first, again, read, store.messages("work", "INBOX")
    finally:
        poller.close()
        store.close()


def test_a_server_refusing_the_qresync_parameter_is_read_without_it(tmp_path):
    """A server that offers QRESYNC and enables it (RFC 7162 3.2.3), then answers BAD to
    EXAMINE's QRESYNC parameter, is asked with CONDSTORE instead, from then on: a running
    service's quick check (its session enabled QRESYNC at the first poll) goes on. Its
    greeting does not offer ENABLE: ENABLE goes with the first EXAMINEs, not the LOGIN."""
    state = b"* OK [HIGHESTMODSEQ 9] modseq\r\n"
    examined = DEFAULTS["EXAMINE"].replace(b"{tag} OK", state + b"{tag} OK")

    def examine(tag: str, folder: str) -> bytes:
        if "(QRESYNC" in folder:
            return f"{tag} BAD QRESYNC parameter not understood\r\n".encode()
        return examined.replace(b"{tag}", tag.encode())

    with qresync_imap(examine, greeting=b"IMAP4rev1 AUTH=PLAIN") as server:
        first, again, read, _ = kept_polls(server, tmp_path)
        asked = [line.split(" ", 1)[1] for line in server.lines[read:]]
        [enable] = [n for n, line in enumerate(server.lines) if "ENABLE" in line]
        assert " EXAMINE " in server.lines[enable + 1]  # with the session's first EXAMINE
    assert not first.report.errors and not again.report.errors and again.fetched == 0
    assert [line for line in asked if line.startswith("EXAMINE")] == [
        'EXAMINE "INBOX" (QRESYNC (7 9))', 'EXAMINE "Sent" (QRESYNC (7 9))',
        'EXAMINE "INBOX" (CONDSTORE)', 'EXAMINE "Sent" (CONDSTORE)',
    ], asked  # fmt: skip


def test_a_qresync_answer_that_does_not_add_up_is_asked_by_uid(tmp_path):
    """The quick check found INBOX grown by one; its EXAMINE (QRESYNC) goes with a FETCH of
    the UIDs from the last UIDNEXT on, but the answer names no new message while the count
    grew (a server that left something out). That FETCH's answer is read and dropped, and
    the folder is asked by UID instead: the poll ends, nothing is lost or hangs."""

    def state(exists: int, uidnext: int, modseq: int) -> bytes:
        return (
            f"* {exists} EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT {uidnext}] n\r\n"
            f"* OK [HIGHESTMODSEQ {modseq}] m\r\n{{tag}} OK [READ-ONLY] done\r\n"
        ).encode()

    def examine(tag: str, folder: str) -> bytes:
        answer = state(3, 4, 12) if "(QRESYNC" in folder else state(2, 3, 9)
        return answer.replace(b"{tag}", tag.encode())

    second: list[str] = []  # the second poll's FETCHes in INBOX

    def uid_fetch(tag: str, folder: str) -> bytes:
        done = f"{tag} OK Fetch completed\r\n".encode()
        if not second or folder != "INBOX":
            return ScriptedImap._fetch(tag, folder)
        second.append(folder)
        if len(second) == 2:  # the new UIDs' FETCH: its record flags UID 2, not to be taken
            header = inbound(2).split(b"{", 1)[1].split(b"}\r\n", 1)[1][:-3]
            return fetch_item(2, header, "\\Flagged") + done
        return b"* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n" + done  # the flags asked by UID

    with qresync_imap(examine, **{"UID FETCH": uid_fetch}) as server:
        _, again, read, cached = kept_polls(server, tmp_path, lambda: second.append(""))
        asked = [line.split(" ", 1)[1] for line in server.lines[read:]]
    assert not again.report.errors, again.report.errors
    assert "\\Flagged" not in cached[2].flags  # the dropped FETCH's record was not read as flags
    tail = next(n for n, line in enumerate(asked) if line.startswith("UID FETCH 3:* ("))
    assert asked[tail - 1].startswith('EXAMINE "INBOX" (QRESYNC (7 9))'), asked
    assert "UID SEARCH UID 3:*" in asked[tail + 1 :], asked


def test_what_is_said_of_the_folder_before_closed_is_not_the_next_folders(tmp_path):
    """RFC 7162 3.2.11: with QRESYNC on, an EXAMINE's `OK [CLOSED]` ends the responses about
    the folder selected before it. A VANISHED and a FETCH heard ahead of it (another
    client's changes there) are not applied to the folder examined: the mail stays. (Its
    greeting offers ENABLE: ENABLE QRESYNC goes with the LOGIN.)"""

    def examined(modseq: int) -> bytes:
        state = f"* OK [HIGHESTMODSEQ {modseq}] modseq\r\n".encode()
        return DEFAULTS["EXAMINE"].replace(b"{tag} OK", state + b"{tag} OK")

    stale = b"* VANISHED 2\r\n* 1 FETCH (UID 1 FLAGS (\\Deleted) MODSEQ (12))\r\n"
    closed = b"* OK [CLOSED] Previous mailbox closed.\r\n"

    def examine(tag: str, folder: str) -> bytes:
        answer = stale + closed + examined(12) if "(QRESYNC" in folder else examined(9)
        return answer.replace(b"{tag}", tag.encode())

    with qresync_imap(examine) as server:
        first, again, _, cached = kept_polls(server, tmp_path)
        resynced = [line for line in server.lines if "(QRESYNC (7 9))" in line]
        [login] = [n for n, line in enumerate(server.lines) if " LOGIN " in line]
        assert "ENABLE QRESYNC" in server.lines[login + 1]
    assert resynced and not again.report.errors  # the changed modseq was read by QRESYNC
    assert (
        sorted(f.subject for f in again.report.overdue)
        == sorted(f.subject for f in first.report.overdue)
        == ["Q1", "Q2"]
    )
    assert sorted(cached) == [1, 2] and "\\Deleted" not in cached[1].flags
