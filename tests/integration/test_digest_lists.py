"""A digest lists each list's most urgent entries and counts the rest (issue 21): a big
mailbox's digest stays readable and small enough for any mail server, and the ledger
counts as seen only the threads the digest showed."""

from __future__ import annotations

from datetime import timedelta

from inboxwatch.core.model import AccountSummary, Address, Finding, Report, Stats
from inboxwatch.core.reminders import LISTED, LISTED_LEAST, listed, with_seen
from inboxwatch.delivery.digest import compose, render
from inboxwatch.service.ledger import DigestGroup, DigestLedger
from inboxwatch.store.sqlite import SqliteStore
from tests.browser import dump_dom
from tests.integration.test_digest import NOW, demo_digest
from tests.integration.test_service import Recorder

H = timedelta(hours=1)
WINDOW = timedelta(hours=24)


def found(account: str, n: int, hours: float, **kw: object) -> Finding:
    return Finding(
        account=account,
        thread_id=f"<t{n}.{account}@x.example>",
        subject=f"Question {n} for {account}",
        correspondent=Address(f"Person {n}", f"p{n}@x.example"),
        waiting_since=NOW - timedelta(hours=hours),
        message_ids=(f"<m{n}.{account}@x.example>",),
        folder="INBOX",
        uids=(n,),
        messages_in_thread=1,
        last_reply=None,
        reason=f"Person {n} wrote; no reply from you in this thread",
        **kw,  # type: ignore[arg-type]
    )


def report_of(overdue: dict[str, int], awaiting: int = 0) -> Report:
    """`overdue[account]` threads each, the first waiting longest; `awaiting` of yours
    in the first account."""
    names = list(overdue)
    summaries = [AccountSummary(a, ("INBOX",), ("Sent",), 1, 1, WINDOW) for a in names]
    late = [found(a, n, 25 + n) for a in names for n in range(overdue[a])]
    late.sort(key=lambda f: f.waiting_since)
    yours = [found(names[0], 10_000 + n, 100 + n) for n in range(awaiting)]
    yours.sort(key=lambda f: f.waiting_since)
    report = Report(NOW, NOW, WINDOW, summaries, late, [], Stats())
    report.awaiting.extend(yours)
    return report


def entries(text: str) -> list[int]:
    """The numbers of the threads the text lists, in its order."""
    return [int(line.split()[2]) for line in text.splitlines() if line.startswith("* Question")]


def test_one_account_lists_its_most_urgent_and_counts_the_rest():
    report = report_of({"work": LISTED + 30}, awaiting=LISTED + 20)
    rendered = render(report, demo_digest(), NOW)
    assert rendered.subject.startswith(f"{LISTED + 30} conversations waiting")
    assert rendered.overdue == LISTED + 30
    text = rendered.text
    shown = entries(text.split("Waiting on others")[0])
    # The longest waits (the highest numbers here) are the ones shown.
    assert shown == list(range(LISTED + 29, 29, -1))
    assert "… and 30 more waiting for your reply" in text
    assert "… and 20 more, each waiting less long: `inboxwatch scan` lists them all" in text
    assert text.count("\n* Re") == 0 and text.count("\n* Question") == 2 * LISTED
    assert "… and 30 more waiting for your reply" in rendered.html
    assert "<code>inboxwatch scan</code> lists them all" in rendered.html


def test_a_list_that_fits_says_nothing_more():
    text = render(report_of({"work": LISTED}), demo_digest(), NOW).text
    assert text.count("\n* Question") == LISTED and "… and" not in text


def test_accounts_share_the_digest_and_each_keeps_at_least_a_few():
    report = report_of({"a": 80, "b": 80})
    text = render(report, demo_digest(), NOW).text
    per = LISTED // 2
    assert text.count("\n* Question") == 2 * per
    assert text.count(f"… and {80 - per} more waiting for your reply") == 2
    assert listed(list(range(50)), 40) == (list(range(LISTED_LEAST)), 50 - LISTED_LEAST)
    many = render(report_of({f"a{n}": 5 for n in range(40)}), demo_digest(), NOW).text
    assert LISTED // 40 < LISTED_LEAST  # so each account shows the least a list does
    assert many.count("\n* Question") == 40 * LISTED_LEAST
    assert many.count(f"… and {5 - LISTED_LEAST} more waiting for your reply") == 40


def test_a_huge_backlog_makes_a_small_message():
    """5,000 overdue and 5,000 of yours awaiting: listed in full the e-mail was ~10 MB
    (1 KB an entry, bench/README.md), more than a default Postfix takes."""
    report = report_of({"work": 5000}, awaiting=5000)
    message = compose(render(report, demo_digest(), NOW), demo_digest(), NOW)
    size = len(message.as_bytes())
    assert size < 500_000, size
    assert "… and 4,900 more waiting for your reply" in message.get_body(("plain",)).get_content()


def test_the_ledger_counts_only_what_the_digest_showed(tmp_path):
    """A thread past the list's end was not seen: its `digests_seen` stays 0, and a
    `remind = "once"` thread there is still listed in a later, shorter digest."""
    report = report_of({"work": LISTED + 5})
    last = report.overdue[-1]  # the shortest wait: past the end
    report.overdue[-1] = last._replace(remind="once")
    store = SqliteStore(tmp_path / "state.db")
    try:
        sender = Recorder()
        ledger = DigestLedger(DigestGroup(demo_digest(), ("work",), ""), store, [])
        assert ledger.send_if_due(report, sender, NOW) is not None
        seen = store.digests_seen()
        assert set(seen) == {("work", f.thread_id) for f in report.overdue[:LISTED]}
        assert set(seen.values()) == {1}
        # The next day the others were answered: the "once" thread is listed, once.
        tail = report_of({"work": LISTED + 5})
        tail.overdue[:] = [*report.overdue[LISTED:-1], report.overdue[-1]]
        later = NOW + timedelta(days=1)
        assert ledger.send_if_due(with_seen(tail, seen), sender, later) is not None
        text = sender.sent[-1].get_body(("plain",)).get_content()
        assert last.subject in text and "… and" not in text
        assert store.digests_seen()[("work", last.thread_id)] == 1
    finally:
        store.close()


def test_the_count_of_the_rest_shows_in_a_browser(tmp_path):
    page = tmp_path / "digest.html"
    page.write_text(render(report_of({"work": LISTED + 1234}), demo_digest(), NOW).html)
    dom = dump_dom(page, tmp_path / "profile")
    assert f"<title>{LISTED + 1234} conversations waiting" in dom
    assert "… and 1,234 more waiting for your reply" in dom
    assert dom.count("Question ") == LISTED
