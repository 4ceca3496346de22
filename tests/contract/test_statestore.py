"""One set of expectations for every StateStore (core.ports). Today SQLite; a PostgreSQL
store joins the `store` fixture's parameters and must pass the same suite unchanged."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

from inboxwatch.config import State
from inboxwatch.core.bodytext import Details
from inboxwatch.core.model import Address, Coverage, MessageMeta
from inboxwatch.core.ports import FolderState, KeptChange, KeptFinding, StateStore
from inboxwatch.core.splice import names_of
from inboxwatch.store.beside import open_store
from inboxwatch.store.rows import micros
from tests.conftest import NOW

STATE = FolderState(uidvalidity=7, uidnext=4, modseq=99, exists=3)
ANNA = Address("Anna", "anna@client.example")


def meta(uid: int, folder: str = "INBOX") -> MessageMeta:
    return MessageMeta(
        folder,
        uid,
        f"<{uid}@x>",
        ("<p@x>",),
        ("<r@x>", "<p@x>"),
        "Rechnung ü",
        ANNA,
        NOW - timedelta(hours=uid),
        NOW,
        (ANNA,),
        (Address("", "me@example.com"),),
        (),
        frozenset({"\\Seen"}),
        "auto-replied",
        "bulk",
        True,
        "multipart/report",
        True,
        True,
        True,
    )


Opener = Callable[[], StateStore]


@pytest.fixture(params=["sqlite", "postgres"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> State:
    """The config's `[state]`: a file, or a new database on the tests' PostgreSQL."""
    if request.param == "postgres":
        return State(url=request.getfixturevalue("postgres").new_database())
    return State(path=str(tmp_path / "state.db"))


@pytest.fixture
def opener(state: State) -> Opener:
    return lambda: open_store(state)


@pytest.fixture
def store(opener: Opener) -> Iterator[StateStore]:
    opened = opener()
    yield opened
    opened.close()


def save(store: StateStore, *metas: MessageMeta, replace: bool = True, delete=()) -> None:
    with store.transaction():
        store.save_folder("work", "INBOX", STATE, metas, delete, replace)


def test_a_folder_and_its_messages_round_trip(store):
    assert store.folder("work", "INBOX") is None and store.messages("work", "INBOX") == {}
    save(store, meta(1), meta(2))
    assert store.folder("work", "INBOX") == STATE
    assert store.messages("work", "INBOX") == {1: meta(1), 2: meta(2)}
    assert store.messages("other", "INBOX") == {} and store.folder("work", "Sent") is None


def test_changes_replace_delete_and_upsert(store):
    save(store, meta(1), meta(2), meta(3))
    save(store, meta(2)._replace(flags=frozenset()), replace=False, delete=[3])
    kept = store.messages("work", "INBOX")
    assert sorted(kept) == [1, 2] and kept[2].flags == frozenset()
    save(store, meta(4))  # replace: UIDVALIDITY changed, the cache is rebuilt
    assert sorted(store.messages("work", "INBOX")) == [4]


def test_an_interrupted_transaction_writes_nothing(store):
    save(store, meta(1))
    with pytest.raises(KeyboardInterrupt), store.transaction():
        store.save_folder("work", "INBOX", STATE, [meta(2)], [1], False)
        store.save_folder("work", "Sent", STATE, [meta(3, "Sent")], [], True)
        raise KeyboardInterrupt
    assert sorted(store.messages("work", "INBOX")) == [1]
    assert store.folder("work", "Sent") is None


def test_folder_changes_outside_a_transaction_are_refused(store):
    with pytest.raises(RuntimeError):
        store.save_folder("work", "INBOX", STATE, [meta(1)], [], True)
    assert store.folder("work", "INBOX") is None


def test_what_messages_name_is_kept_for_run_once_only(store):
    """store/names.py: what `run --once` finds a change's messages by (core.splice)."""
    one, two = meta(1), meta(2)._replace(message_id="<2@x>", references=(), in_reply_to=())
    save(store, one, two)  # a running service: nothing named
    assert not store.named("work", "INBOX") and store.naming("work", ["<p@x>"]) == set()
    with store.transaction():
        store.save_folder("work", "INBOX", STATE, [], [], False, [one, two])
    assert store.named("work", "INBOX")
    assert store.naming("work", ["<p@x>"]) == {("INBOX", 1)}
    assert store.naming("work", ["<2@x>", "<r@x>", "<none@x>"]) == {("INBOX", 1), ("INBOX", 2)}
    assert store.naming("work", names_of(two) - {"<2@x>"}) == {("INBOX", 1), ("INBOX", 2)}
    assert store.naming("other", ["<p@x>"]) == set()
    many = [f"<{n}@nowhere>" for n in range(1200)]  # more than one statement's worth
    assert store.naming("work", [*many, "<2@x>"]) == {("INBOX", 2)}
    three = meta(3)._replace(message_id="<3@x>", references=(), in_reply_to=("<2@x>",))
    with store.transaction():  # named: only the change is
        store.save_folder("work", "INBOX", STATE, [three], [1], False, (), [one])
    assert store.naming("work", ["<p@x>"]) == set()
    assert store.naming("work", ["<2@x>"]) == {("INBOX", 2), ("INBOX", 3)}
    assert store.uids("work", "INBOX") == {2, 3}
    assert store.cached("work", [("INBOX", 3), ("INBOX", 9), ("Sent", 2)]) == [three]
    save(store, three, replace=False)  # a service again: the names go
    assert not store.named("work", "INBOX") and store.naming("work", ["<2@x>"]) == set()
    with store.transaction():  # only a change, on a folder not named: it stays unnamed
        store.save_folder("work", "INBOX", STATE, [meta(4)], [], False, ())
    assert not store.named("work", "INBOX") and store.naming("work", ["<4@x>"]) == set()


def test_two_folders_whose_places_share_a_hash_are_not_named(store):
    """store/names.py keeps a message's folder as a 32-bit hash: where two of an account's
    folders share one, a message's names could go with another's; neither is named."""
    first, second = "uablaijhsa", "pfcxpytzcn"  # CRC-32 of "work\0<folder>" alike
    with store.transaction():
        store.save_folder("work", first, STATE, [meta(1, first)], [], True, [meta(1, first)])
    assert store.named("work", first)
    with store.transaction():
        store.save_folder("work", second, STATE, [meta(1, second)], [], True, [meta(1, second)])
    assert not store.named("work", second) and not store.named("work", first)


def test_messages_are_found_by_when_they_arrived(store):
    with store.transaction():
        store.save_folder("work", "INBOX", STATE, [meta(1), meta(2), meta(3)], [], True, ())
    # meta(n) arrived n hours before NOW; after `after`, up to and with `until`
    assert store.arrived("work", "INBOX", None, NOW - timedelta(hours=2)) == {2, 3}
    assert store.arrived("work", "INBOX", NOW - timedelta(hours=3), NOW) == {1, 2}
    assert store.arrived("work", "Sent", None, NOW) == set()


def test_the_kept_report_matches_its_fingerprint_and_new_mail_drops_it(store):
    store.save_report("fp1", '{"w": ["INBOX"]}', '{"r": "é"}'.encode(), [], True)
    assert store.kept_folders("fp1") == '{"w": ["INBOX"]}' and store.kept_folders("fp2") is None
    assert store.kept_report("fp1", '{"w": ["INBOX"]}') == '{"r": "é"}'.encode()
    store.save_report("fp1", '{"w": ["INBOX"]}', b"{}", [], True)  # a shorter one replaces it
    assert store.kept_report("fp1", '{"w": ["INBOX"]}') == b"{}"
    store.save_report("fp1", '{"w": ["INBOX"]}', '{"r": "é"}'.encode(), [], False)
    # The body read after its folders is theirs: another report kept since is not.
    assert store.kept_report("fp1", '{"w": []}') is None
    assert store.kept_report("fp2", '{"w": ["INBOX"]}') is None
    save(store, meta(1))  # the report described the folders before: it goes
    assert store.kept_folders("fp1") is None
    assert store.kept_report("fp1", '{"w": ["INBOX"]}') is None


def kept(account, thread, kind, since_h, due_h, ids=()):
    """A kept finding row: `since_h` and `due_h` hours after NOW's epoch second."""
    at = micros(NOW)
    hour = 3_600_000_000
    row = f"{account}/{thread}".encode()
    return KeptFinding(
        account, thread, kind, at + since_h * hour, at + due_h * hour, "\n".join(ids), row
    )


def test_the_kept_rows_change_by_thread_and_count_what_shows(store):
    hour = timedelta(hours=1)
    rows = [
        kept("work", "<a>", 0, -50, -26),  # overdue
        kept("work", "<b>", 1, -10, 14, ("<b>", "<b2>")),  # waiting, overdue 14 h on
        kept("work", "<c>", 3, -60, -60),  # awaiting: never counted
        kept("home", "<d>", 0, -5, -1),
    ]
    first = [
        KeptChange("work", (), rows[:3], {"c1": 2, "c2": 1}),
        KeptChange("home", (), rows[3:], {"c1": 1}),
    ]
    store.save_report("fp", "{}", b"head", first, True)
    assert store.kept_counts("work", NOW - 100 * hour, NOW) == (1, 1)
    assert store.kept_counts("work", NOW - 30 * hour, NOW) == (0, 1)  # <a> out of the lookback
    assert store.kept_counts("work", NOW - 100 * hour, NOW + 15 * hour) == (2, 0)
    assert store.kept_counts("home", NOW - 100 * hour, NOW) == (1, 0)
    # Near a note: by thread, or by a message id (LIKE's wildcards are taken as text).
    assert store.kept_findings(("work", "<b>", "<x>")) == [(1, b"work/<b>")]
    assert store.kept_findings(("work", "<x>", "<b2>")) == [(1, b"work/<b>")]
    assert store.kept_findings(("work", "<x>", "%")) == []
    assert store.kept_findings(("home", "<b>", "<x>")) == []
    # A splice: <a> goes, <e> comes; one c1 taken out, c3 put in.
    change = KeptChange("work", {"<a>"}, [kept("work", "<e>", 1, -1, 23)], {"c1": -1, "c3": 1})
    store.save_report("fp", "{}", b"head2", [change], False)
    assert store.kept_report("fp", "{}") == b"head2"
    assert sorted(store.kept_findings()) == [
        (0, b"home/<d>"), (1, b"work/<b>"), (1, b"work/<e>"), (3, b"work/<c>")
    ]  # fmt: skip
    assert sorted(store.kept_conversations()) == [
        ("home", "c1", 1), ("work", "c1", 1), ("work", "c2", 1), ("work", "c3", 1)
    ]  # fmt: skip
    # A conversation to take out that is not kept: the rows no longer match their head,
    # which goes (the next run reads the cache whole and keeps rows afresh).
    store.save_report("fp", "{}", b"head3", [KeptChange("work", (), [], {"c9": -1})], False)
    assert store.kept_folders("fp") is None
    store.save_report("fp", "{}", b"head4", [KeptChange("work", (), rows[:1], {})], True)
    assert store.kept_findings() == [(0, b"work/<a>")] and store.kept_conversations() == []


def test_the_digest_ledger_keeps_the_last_state_per_period(store):
    assert store.digest("2026-12-04") is None
    store.mark_digest("2026-12-04", "sending", "<d@x>", NOW)
    store.mark_digest("2026-12-04", "sent", "<d@x>", NOW)
    assert store.digest("2026-12-04") == ("sent", "<d@x>")
    assert store.digest("2026-12-05") is None


def test_poll_records_count_failures_until_a_success(store):
    later = NOW + timedelta(minutes=15)
    store.record_poll("work", NOW, "connection dropped", 5, later)
    store.record_poll("work", later, "connection dropped", 5)
    record = store.polls()["work"]
    assert (record.failures, record.error_code, record.last_success) == (2, 5, None)
    assert record.last_attempt == later and record.not_before is None
    store.record_poll("work", later + timedelta(minutes=1))
    record = store.polls()["work"]
    assert (record.failures, record.last_error, record.last_success) == (
        0,
        None,
        record.last_attempt,
    )


def test_a_poll_notes_what_its_cache_covers(store):
    """Kept through a failure and a success that does not say (service/backoff.py)."""
    month, year = Coverage("a1", timedelta(days=30), "1"), Coverage("b2", timedelta(days=400), "2")
    store.record_poll("work", NOW)
    assert store.polls()["work"].covers is None  # as an earlier version left it
    store.record_poll("work", NOW, covers=month)
    store.record_poll("work", NOW + timedelta(minutes=15), "connection dropped", 5)
    assert store.polls()["work"].covers == month
    store.record_poll("work", NOW + timedelta(minutes=30))
    assert store.polls()["work"].covers == month
    store.record_poll("work", NOW + timedelta(minutes=45), covers=year)
    assert store.polls()["work"].covers == year


def test_what_was_read_of_one_accounts_bodies_can_be_dropped(store):
    store.save_details(("work", "INBOX", 7), {1: Details("Thanks", False)})
    store.save_details(("home", "INBOX", 7), {1: Details("Lunch?", False)})
    store.forget_details("work")
    assert store.details(("work", "INBOX", 7), [1]) == {}
    assert store.details(("home", "INBOX", 7), [1]) == {1: Details("Lunch?", False)}


def test_what_was_written_is_there_after_reopening(opener):
    first = opener()
    save(first, meta(1))
    first.mark_digest("p", "sent", "<d@x>", NOW)
    first.record_poll("work", NOW)
    first.close()
    again = opener()
    try:
        assert again.messages("work", "INBOX") == {1: meta(1)}
        assert again.digest("p") == ("sent", "<d@x>")
        assert again.polls()["work"].last_success == NOW
    finally:
        again.close()


def test_a_digest_claim_is_the_sending_mark(store):
    store.claim_digest("2026-12-04", "<d@x>", NOW)
    assert store.digest("2026-12-04") == ("sending", "<d@x>")


def test_a_digest_is_claimed_once_and_a_dead_senders_claim_taken_over(store):
    """Replicas (service/replicas.py): a claim younger than the stale time holds; an older
    one was left by a replica that died before saying "sent", and is taken over."""
    minute = timedelta(minutes=1)
    assert store.claim_digest("p", "<d@x>", NOW, NOW - 2 * minute)
    assert not store.claim_digest("p", "<d@x>", NOW + minute, NOW - minute)
    assert store.claim_digest("p", "<d@x>", NOW + 3 * minute, NOW + minute)
    store.mark_digest("p", "sent", "<d@x>", NOW + 3 * minute)
    assert not store.claim_digest("p", "<d@x>", NOW + 9 * minute)  # sent: never again
    store.mark_digest("q", "pending", "<e@x>", NOW)  # the server refused it: try again
    assert store.claim_digest("q", "<e@x>", NOW, NOW) and store.digest("q") == ("sending", "<e@x>")


def test_of_claims_made_at_once_by_two_replicas_one_wins(postgres):
    """PostgreSQL only: an SQLite file has one service (a second gets exit 7)."""
    state = State(url=postgres.new_database())
    first, second = open_store(state), open_store(state)
    try:
        with ThreadPoolExecutor(2) as pool:
            won = list(
                pool.map(lambda s: s.claim_digest("p", "<d@x>", NOW, NOW), [first, second] * 10)
            )
        assert won.count(True) == 1
    finally:
        first.close()
        second.close()


def test_each_accounts_report_part_is_kept_with_its_poll_time(store):
    assert store.parts() == {}
    store.save_parts(NOW, {"a": '{"a": 1}', "b": '{"b": 1}'})
    store.save_parts(NOW + timedelta(hours=1), {"b": '{"b": 2}'})
    assert store.parts() == {"a": (NOW, '{"a": 1}'), "b": (NOW + timedelta(hours=1), '{"b": 2}')}
    store.touch_parts(NOW + timedelta(hours=2), ["a"])  # polled again, nothing changed
    assert store.parts()["a"] == (NOW + timedelta(hours=2), '{"a": 1}')


def test_digests_are_held_back_only_until_a_resend_is_accepted(store):
    assert store.ledger_lost() is None
    store.accept_resend()  # nothing to accept: harmless
    assert store.ledger_lost() is None


def test_snooze_notes_start_empty_and_survive_a_reopen(opener, state):
    """Issue 18: `snooze`/`mute` notes are the user's; a reopened store still has them."""
    from datetime import UTC, datetime

    from inboxwatch.core.snooze import Snooze
    from inboxwatch.store import notes
    from inboxwatch.store.beside import write_beside

    store = opener()
    assert store.snoozes() == []
    store.close()
    when = datetime(2026, 12, 1, tzinfo=UTC)
    note = Snooze("<a@x>", "work", "<t@x>", "Q", ("<a@x>", "<b@x>"), when, when)
    write_beside(state, lambda db: notes.insert(db, note))
    store = opener()
    try:
        assert store.snoozes() == [note]
    finally:
        store.close()


def test_parse_failures_are_kept_per_uidvalidity_until_gone(store):
    where = ("work", "INBOX", STATE.uidvalidity)
    assert store.parse_failures(where) == {}
    with store.transaction():
        store.save_failures(where, {3: "unparsable header block", 5: "bad"}, [], False)
    assert store.parse_failures(where) == {3: "unparsable header block", 5: "bad"}
    assert store.parse_failures(("work", "INBOX", 8)) == {}  # another UIDVALIDITY
    with store.transaction():
        store.save_failures(where, {}, [5], False)
    assert store.parse_failures(where) == {3: "unparsable header block"}
    with store.transaction():
        store.save_failures(("work", "INBOX", 8), {1: "x"}, [], False)  # renumbered
    assert store.parse_failures(where) == {} and store.parse_failures(("work", "INBOX", 8))
    with store.transaction():
        store.save_failures(("work", "INBOX", 8), {}, [], True)  # read afresh
    assert store.parse_failures(("work", "INBOX", 8)) == {}


def test_digests_listing_a_thread_are_counted_once_per_period(store):
    assert store.digests_seen() == {}
    listed = [("work", "<t1>"), ("work", "<t2>")]
    store.note_listed("2026-11-24T08:00@Europe/Berlin", listed, NOW)
    store.note_listed("2026-11-24T08:00@Europe/Berlin", listed[:1], NOW)  # a resend, a group
    store.note_listed("2026-11-25T08:00@Europe/Berlin", listed[:1], NOW + timedelta(days=1))
    assert store.digests_seen() == {("work", "<t1>"): 2, ("work", "<t2>"): 1}


def test_threads_share_one_store_without_mixing_transactions(store):
    """A poll reads its accounts in threads (`max_parallel`, core.scan.run_scan) on the
    store's one connection: one thread's statements must not land in, or break, another
    thread's transaction."""

    def work(n: int) -> None:
        for uid in range(1, 16):
            with store.transaction():
                store.save_folder(f"a{n}", "INBOX", STATE, [meta(uid)], [], False)
            store.record_poll(f"a{n}", NOW)
            store.messages(f"a{(n + 1) % 4}", "INBOX")
            store.save_details(("a", "INBOX", n), {uid: Details("Thanks", False)})

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(work, range(4)))
    for n in range(4):
        assert sorted(store.messages(f"a{n}", "INBOX")) == list(range(1, 16))
    assert set(store.polls()) == {"a0", "a1", "a2", "a3"}
