"""End-to-end: `inboxwatch scan` against a real Dovecot, one contract clause per test."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import NOW, OWNER, Mailbox, mail

pytestmark = pytest.mark.dovecot

ANNA = "Anna Keller <anna@client.example>"
H = timedelta(hours=1)


def overdue_subjects(result) -> list[str]:
    return [item["subject"] for item in result.json()["overdue"]]


def seed_coverage(box: Mailbox) -> None:
    """An unrelated sent message, so the coverage rule sees a usable sent folder."""
    box.add("Sent", mail(OWNER, "zed@else.example", "Unrelated"), NOW - 5 * 24 * H)


def test_unanswered_inbound_is_overdue_with_contract_fields(sent_mailbox, scan):
    seed_coverage(sent_mailbox)
    sent_mailbox.add(
        "INBOX", mail(ANNA, subject="Invoice question", mid="<q1@client.example>"), NOW - 46.8 * H
    )
    result = scan()
    assert result.code == 1, result.err
    report = result.json()
    item = report["overdue"][0]
    assert item["subject"] == "Invoice question"
    assert item["correspondent"] == {"name": "Anna Keller", "address": "anna@client.example"}
    assert item["waiting_hours"] == 46.8
    assert item["message_ids"] == ["<q1@client.example>"]
    assert item["thread_id"] == "<q1@client.example>"
    assert item["folder"] == "INBOX" and item["uids"] == [1]
    assert "no reply from you" in item["reason"]
    assert report["accounts"][0]["sent_folders"] == ["Sent"]
    assert report["stats"]["overdue"] == 1


@pytest.mark.parametrize("linking", ["in_reply_to", "references"])
def test_reply_in_sent_answers_the_thread(sent_mailbox, scan, linking):
    sent_mailbox.add("INBOX", mail(ANNA, mid="<a1@client.example>"), NOW - 50 * H)
    link = (
        {"in_reply_to": "<a1@client.example>"}
        if linking == "in_reply_to"
        else {"references": ("<a1@client.example>",)}
    )
    sent_mailbox.add("Sent", mail(OWNER, ANNA, "Re: Hello", **link), NOW - 40 * H)
    result = scan()
    assert result.code == 0, result.out
    assert result.json()["stats"]["answered"] == 1


def test_reply_joins_through_a_missing_intermediate_message(sent_mailbox, scan):
    sent_mailbox.add("INBOX", mail(ANNA, mid="<root@client.example>"), NOW - 50 * H)
    # The reply cites a message we never saw between them (JWZ: still one thread).
    sent_mailbox.add(
        "Sent",
        mail(
            OWNER,
            ANNA,
            "Re: Hello",
            references=("<root@client.example>", "<lost@elsewhere.example>"),
        ),
        NOW - 40 * H,
    )
    assert scan().code == 0


def test_answered_flag_counts_as_a_reply(sent_mailbox, scan):
    seed_coverage(sent_mailbox)
    sent_mailbox.add("INBOX", mail(ANNA), NOW - 50 * H, flags=("\\Answered", "\\Seen"))
    assert scan().code == 0


def test_a_handled_keyword_set_in_the_users_client_closes_the_thread(sent_mailbox, scan):
    """Issue 18, item 5: `$Handled` (any case, as clients write it) or the account's own
    keyword answers a thread up to that message; a later message waits again."""
    seed_coverage(sent_mailbox)
    sent_mailbox.add("INBOX", mail(ANNA, OWNER, "Done?", mid="<h1@c.example>"), NOW - 60 * H)
    sent_mailbox.add(
        "INBOX",
        mail(ANNA, OWNER, "Re: Done?", mid="<h2@c.example>", in_reply_to="<h1@c.example>"),
        NOW - 50 * H,
        flags=("$handled", "\\Seen"),
    )
    sent_mailbox.add(
        "INBOX",
        mail("Bo <bo@x.example>", OWNER, "FYI", mid="<f1@x.example>"),
        NOW - 50 * H,
        flags=("Done",),
    )
    first = scan()
    assert [e["subject"] for e in first.json()["overdue"]] == ["FYI"]
    assert [e["subject"] for e in scan(handled_keyword="done").json()["overdue"]] == ["Done?"]
    assert len(scan(handled_keyword="").json()["overdue"]) == 2  # off: both wait
    sent_mailbox.add(
        "INBOX",
        mail(ANNA, OWNER, "Re: Done?", mid="<h3@c.example>", in_reply_to="<h2@c.example>"),
        NOW - 30 * H,
    )
    sent_mailbox.add(  # Anna's out-of-office reply to herself: in the thread, not counted
        "INBOX",
        mail(
            ANNA,
            OWNER,
            "Automatic reply: Done?",
            mid="<h4@c.example>",
            in_reply_to="<h3@c.example>",
        ),
        NOW - 29 * H,
    )
    again = {e["subject"]: e for e in scan().json()["overdue"]}
    assert again["Re: Done?"]["message_ids"] == ["<h3@c.example>"]
    assert "marked answered or handled" in again["Re: Done?"]["reason"]
    kinds = {r["kind"]: r for r in again["Re: Done?"]["reasons"]}
    assert kinds["marked"]["message_id"] == "<h2@c.example>"
    assert kinds["marked"]["detail"] == "marked $handled"
    assert kinds["not_counted"]["message_id"] == "<h4@c.example>"
    assert kinds["not_counted"]["detail"] == "automatic-reply subject"


def test_list_mail_written_to_you_is_mail_to_you_and_machines_stay_out(sent_mailbox, scan):
    """Issue 18, items 3 and 6, through Dovecot (the header fields are fetched)."""
    seed_coverage(sent_mailbox)
    listed = {"List-Id": "Dev <dev.lists.example>", "List-Post": "<mailto:dev@lists.example>"}
    question = mail(
        ANNA, OWNER, "[PATCH] fix the parser", mid="<p1@c.example>", cc="dev@lists.example",
        headers={**listed, "List-Unsubscribe": "<mailto:dev-leave@lists.example>"},
    )  # fmt: skip
    direct = mail(
        ANNA, OWNER, "[PATCH] fix the parser", mid="<p1@c.example>", cc="dev@lists.example"
    )
    for copy in (question, direct):  # the list's copy and the direct one: counted once
        sent_mailbox.add("INBOX", copy, NOW - 50 * H)
    sent_mailbox.add(
        "INBOX",
        mail("Carl <carl@d.example>", "dev@lists.example", "Re: release", headers=listed),
        NOW - 50 * H,
    )
    newsletter = {
        **listed,
        "List-Unsubscribe": "<https://news.example/u/1>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    sent_mailbox.add("INBOX", mail("News <hi@news.example>", headers=newsletter), NOW - 50 * H)
    github = {
        "Reply-To": "reply+AB12@reply.github.com",
        "X-GitHub-Reason": "mention",
    }
    sent_mailbox.add("INBOX", mail("Bo <notifications@github.com>", headers=github), NOW - 50 * H)
    exchange = {"X-MS-Exchange-Inbox-Rules-Loop": "dana@e.example"}
    sent_mailbox.add("INBOX", mail("Dana <dana@e.example>", headers=exchange), NOW - 50 * H)
    report = scan().json()
    [only] = report["overdue"]
    assert only["subject"] == "[PATCH] fix the parser" and only["message_ids"] == ["<p1@c.example>"]
    assert report["stats"]["excluded"] == {"list": 1, "bulk": 1, "automated": 2}


def test_a_teammates_reply_answers_a_shared_inbox(sent_mailbox, scan):
    """Issue 19, item 5: a teammate's reply to the sender answers the thread; a note
    among the team does not."""
    seed_coverage(sent_mailbox)
    sent_mailbox.add("INBOX", mail(ANNA, OWNER, "Refund?", mid="<r1@c.example>"), NOW - 60 * H)
    sent_mailbox.add(
        "INBOX",
        mail("Bob <bob@support.example>", ANNA, "Re: Refund?", in_reply_to="<r1@c.example>"),
        NOW - 55 * H,
    )
    sent_mailbox.add(
        "INBOX", mail("Bo <bo@x.example>", OWNER, "Invoice", mid="<i1@x.example>"), NOW - 60 * H
    )
    sent_mailbox.add(
        "INBOX",
        mail("Bob <bob@support.example>", OWNER, "Re: Invoice", in_reply_to="<i1@x.example>"),
        NOW - 55 * H,
    )  # to the owner alone: a note inside the team, no answer to Bo
    team = scan(team=["*@support.example"]).json()
    assert [e["subject"] for e in team["overdue"]] == ["Invoice"]
    alone = scan().json()
    assert sorted(e["subject"] for e in alone["overdue"]) == ["Invoice", "Refund?"]
    assert team["stats"]["reply_standard"]["answered"] == 1


def test_they_owe_me_your_messages_nobody_answered(sent_mailbox, scan):
    """Issue 19, item 1: `awaiting` lists your last word in a thread past followup_after;
    an auto-reply is no answer, a list or a no-reply address owes nothing."""
    seed_coverage(sent_mailbox)
    box = sent_mailbox
    box.add(
        "Sent",
        mail(OWNER, "Anna <anna@client.example>", "Offer", mid="<o1@m.example>"),
        NOW - 100 * H,
    )
    box.add(
        "Sent", mail(OWNER, "Bo <bo@x.example>", "Contract", mid="<o2@m.example>"), NOW - 100 * H
    )
    box.add(
        "INBOX",
        mail("Bo <bo@x.example>", OWNER, "Automatic reply: Contract", in_reply_to="<o2@m.example>",
             headers={"Auto-Submitted": "auto-replied"}),
        NOW - 99 * H,
    )  # fmt: skip
    box.add("Sent", mail(OWNER, "Cy <cy@y.example>", "Dates", mid="<o3@m.example>"), NOW - 100 * H)
    box.add(
        "INBOX",
        mail("Cy <cy@y.example>", OWNER, "Re: Dates", in_reply_to="<o3@m.example>"),
        NOW - 90 * H,
    )
    box.add(
        "Sent", mail(OWNER, "noreply@shop.example", "Order 7", mid="<o4@m.example>"), NOW - 100 * H
    )
    box.add(
        "Sent", mail(OWNER, "Dee <dee@z.example>", "Recent", mid="<o5@m.example>"), NOW - 20 * H
    )
    data = scan().json()
    owed = {e["subject"]: e for e in data["awaiting"]}
    # Cy answered; a no-reply address owes nothing; Dee's is younger than 3 days.
    assert set(owed) == {"Offer", "Contract", "Unrelated"}
    assert owed["Offer"]["recipient"]["address"] == "anna@client.example"
    assert owed["Offer"]["message_ids"] == ["<o1@m.example>"]
    assert scan(followup_after="0").json()["awaiting"] == []
    assert [e["subject"] for e in scan(followup_after="12h").json()["awaiting"]] == [
        "Unrelated", "Offer", "Contract", "Recent",
    ]  # fmt: skip


def test_reply_from_an_alias_or_plus_address_counts(sent_mailbox, scan):
    sent_mailbox.add("INBOX", mail(ANNA, mid="<b1@client.example>"), NOW - 50 * H)
    sent_mailbox.add("INBOX", mail("Bo <bo@x.example>", mid="<b2@x.example>"), NOW - 50 * H)
    sent_mailbox.add(
        "Sent", mail("Me <ME@Alias.example>", ANNA, in_reply_to="<b1@client.example>"), NOW - 30 * H
    )
    sent_mailbox.add(
        "Sent",
        mail("me+work@mydomain.example", "bo@x.example", in_reply_to="<b2@x.example>"),
        NOW - 30 * H,
    )
    result = scan(addresses=[OWNER, "me@alias.example"])
    assert result.code == 0, result.out


def test_bcc_to_self_copy_in_inbox_counts_as_reply(sent_mailbox, scan):
    seed_coverage(sent_mailbox)
    sent_mailbox.add("INBOX", mail(ANNA, mid="<c1@client.example>"), NOW - 50 * H)
    sent_mailbox.add("INBOX", mail(OWNER, ANNA, in_reply_to="<c1@client.example>"), NOW - 45 * H)
    assert scan().code == 0


def test_customer_writing_again_after_the_reply_is_pending_again(sent_mailbox, scan):
    sent_mailbox.add("INBOX", mail(ANNA, mid="<d1@client.example>"), NOW - 90 * H)
    sent_mailbox.add(
        "Sent",
        mail(OWNER, ANNA, mid="<d2@mydomain.example>", in_reply_to="<d1@client.example>"),
        NOW - 80 * H,
    )
    sent_mailbox.add(
        "INBOX",
        mail(
            ANNA,
            subject="Re: Hello",
            mid="<d3@client.example>",
            in_reply_to="<d2@mydomain.example>",
            references=("<d1@client.example>", "<d2@mydomain.example>"),
        ),
        NOW - 30 * H,
    )
    result = scan()
    assert result.code == 1
    item = result.json()["overdue"][0]
    assert item["message_ids"] == ["<d3@client.example>"]
    assert item["waiting_hours"] == 30.0
    assert item["thread_id"] == "<d1@client.example>"
    assert "your last reply was 2 days 2 hours earlier" in item["reason"]


@pytest.mark.parametrize(
    ("sender", "headers", "content_type", "category"),
    [
        ("List <dev@lists.example>", {"List-Id": "<dev.lists.example>"}, None, "list"),
        ("News <news@shop.example>", {"List-Unsubscribe": "<mailto:u@shop.example>"}, None, "list"),
        ("Bulk <b@shop.example>", {"Precedence": "bulk"}, None, "list"),
        ("Dana <dana@x.example>", {"Auto-Submitted": "auto-replied"}, None, "automated"),
        ("Mail Delivery System <MAILER-DAEMON@mx.example>", {}, None, "automated"),
        ("postmaster@mx.example", {}, None, "automated"),
        (
            "Reports <r@mx.example>",
            {},
            "multipart/report; report-type=delivery-status; boundary=x",
            "automated",
        ),
        ("Shop <no-reply@shop.example>", {}, None, "automated"),
        ("Shop <donotreply@shop.example>", {}, None, "automated"),
        ("Bounced <x@y.example>", {"Return-Path": "<>"}, None, "automated"),
    ],
)
def test_mail_that_expects_no_reply_is_excluded(
    sent_mailbox, scan, sender, headers, content_type, category
):
    seed_coverage(sent_mailbox)
    sent_mailbox.add(
        "INBOX",
        mail(sender, headers=headers, content_type=content_type or "text/plain"),
        NOW - 50 * H,
    )
    result = scan()
    assert result.code == 0, result.out
    assert result.json()["stats"]["excluded"] == {category: 1}


def test_no_reply_sender_with_a_personal_reply_to_expects_a_reply(sent_mailbox, scan):
    seed_coverage(sent_mailbox)
    sent_mailbox.add(
        "INBOX",
        mail("Shop <noreply@shop.example>", headers={"Reply-To": "Lena <lena@shop.example>"}),
        NOW - 50 * H,
    )
    assert scan().code == 1


def test_cc_only_is_excluded_unless_include_cc(sent_mailbox, scan):
    seed_coverage(sent_mailbox)
    sent_mailbox.add("INBOX", mail(ANNA, to="team@client.example", cc=OWNER), NOW - 50 * H)
    result = scan()
    assert result.code == 0
    assert result.json()["stats"]["excluded"] == {"cc_only": 1}
    assert scan(include_cc=True).code == 1


def test_notes_to_self_and_deleted_mail_are_not_waiting(sent_mailbox, scan):
    seed_coverage(sent_mailbox)
    sent_mailbox.add("INBOX", mail(OWNER, OWNER, "Note to self"), NOW - 50 * H)
    sent_mailbox.add("INBOX", mail(ANNA), NOW - 50 * H, flags=("\\Deleted",))
    result = scan()
    assert result.code == 0
    assert result.json()["stats"]["excluded"] == {"deleted": 1}


def test_sent_mail_from_an_unlisted_address_is_never_waiting(sent_mailbox, scan):
    seed_coverage(sent_mailbox)
    sent_mailbox.add("Sent", mail("Me <old-alias@mydomain.example>", ANNA), NOW - 50 * H)
    result = scan()
    assert result.code == 0
    assert result.json()["stats"]["excluded"] == {"sent": 1}


def test_ignore_senders_and_subjects(sent_mailbox, scan):
    seed_coverage(sent_mailbox)
    sent_mailbox.add("INBOX", mail("Bot <bot@notifications.example>"), NOW - 50 * H)
    sent_mailbox.add("INBOX", mail(ANNA, subject="[JIRA] PRJ-1 updated"), NOW - 50 * H)
    result = scan(ignore_senders=["*@notifications.example"], ignore_subjects=["^\\[JIRA\\]"])
    assert result.code == 0
    assert result.json()["stats"]["excluded"] == {"ignored": 2}


def test_message_without_message_id_is_still_reported(sent_mailbox, scan):
    seed_coverage(sent_mailbox)
    sent_mailbox.add("INBOX", mail(ANNA, mid=""), NOW - 50 * H)
    result = scan()
    assert result.code == 1
    item = result.json()["overdue"][0]
    # Issue 18, item 8: a stable synthetic id, the same in every scan; the thread is named by it.
    [synthetic] = item["message_ids"]
    assert synthetic.endswith("@synthetic.inboxwatch.invalid>") and item["thread_id"] == synthetic
    assert scan().json()["overdue"][0]["message_ids"] == [synthetic]


def test_hostile_and_encoded_subjects_are_decoded_and_defused(sent_mailbox, scan):
    seed_coverage(sent_mailbox)
    # Encoded words that decode to CR/LF + a header, and to markup.
    sent_mailbox.add(
        "INBOX", mail(ANNA, subject="=?utf-8?q?Hi=0D=0ABcc:_evil@x.example?="), NOW - 50 * H
    )
    sent_mailbox.add(
        "INBOX",
        mail(
            "=?utf-8?b?SsO2cmc=?= <j@x.example>",
            subject="=?utf-8?q?<script>alert(1)</script>_f=C3=BCr?=",
        ),
        NOW - 49 * H,
    )
    result = scan()
    subjects = overdue_subjects(result)
    assert subjects == ["Hi Bcc: evil@x.example", "<script>alert(1)</script> für"]
    assert result.json()["overdue"][1]["correspondent"]["name"] == "Jörg"
    table = scan("--format", "table")
    assert "\r" not in table.out and "Hi Bcc: evil@x.example" in table.out


def test_internaldate_is_the_clock_not_the_date_header(sent_mailbox, scan):
    seed_coverage(sent_mailbox)
    lying = mail(ANNA, date=NOW + timedelta(days=365 * 70))  # Date: 2096
    sent_mailbox.add("INBOX", lying, NOW - 26 * H)
    result = scan()
    assert result.json()["overdue"][0]["waiting_hours"] == 26.0


def test_window_and_as_of(sent_mailbox, scan):
    seed_coverage(sent_mailbox)
    sent_mailbox.add("INBOX", mail(ANNA), NOW - 5 * H)
    assert scan().code == 0
    assert scan().json()["stats"]["pending"] == 1
    assert scan("--window", "4h").code == 1
    # Judged 10 hours earlier, the message had not arrived yet.
    earlier = scan("--as-of", (NOW - 10 * H).isoformat(), "--window", "1h")
    assert earlier.code == 0 and earlier.json()["accounts"][0]["messages"] == 1


def test_messages_older_than_lookback_are_not_read(sent_mailbox, scan):
    seed_coverage(sent_mailbox)
    sent_mailbox.add("INBOX", mail(ANNA), NOW - timedelta(days=40))
    result = scan(lookback="30d")
    assert result.code == 0
    assert result.json()["accounts"][0]["messages"] == 1  # only the sent one


def test_subject_fallback_needs_the_counterpart_address(sent_mailbox, scan):
    sent_mailbox.add("INBOX", mail(ANNA, subject="Quote", mid="<e1@client.example>"), NOW - 50 * H)
    sent_mailbox.add(
        "INBOX", mail("Bo <bo@x.example>", subject="Logo", mid="<e2@x.example>"), NOW - 50 * H
    )
    # Replies from a client that drops In-Reply-To/References.
    sent_mailbox.add("Sent", mail(OWNER, "anna@client.example", "Re: Quote"), NOW - 40 * H)
    sent_mailbox.add("Sent", mail(OWNER, "someone@else.example", "RE: Logo"), NOW - 40 * H)
    result = scan()
    assert overdue_subjects(result) == ["Logo"]


def test_sent_folder_found_by_special_use_under_another_name(mailbox, scan):
    mailbox.create("Éléments envoyés")  # modified UTF-7 on the wire
    mailbox.add("INBOX", mail(ANNA, mid="<f1@client.example>"), NOW - 50 * H)
    mailbox.add(
        "Éléments envoyés", mail(OWNER, ANNA, in_reply_to="<f1@client.example>"), NOW - 40 * H
    )
    result = scan()
    assert result.code == 0, result.out + result.err
    assert result.json()["accounts"][0]["sent_folders"] == ["Éléments envoyés"]


def test_sent_folder_found_by_usual_name(mailbox, scan):
    mailbox.create("Sent Items")
    mailbox.add("INBOX", mail(ANNA, mid="<g1@client.example>"), NOW - 50 * H)
    mailbox.add("Sent Items", mail(OWNER, ANNA, in_reply_to="<g1@client.example>"), NOW - 40 * H)
    result = scan()
    assert result.code == 0
    assert result.json()["accounts"][0]["sent_folders"] == ["Sent Items"]


def test_missing_sent_folder_reports_nothing_overdue_and_says_why(mailbox, scan):
    mailbox.add("INBOX", mail(ANNA), NOW - 50 * H)
    result = scan()
    assert result.code == 3
    report = result.json()
    assert report["overdue"] == []
    assert report["errors"][0]["kind"] == "coverage"
    assert "no sent folder found" in result.err


def test_empty_sent_folder_holds_back_unless_named(sent_mailbox, scan):
    sent_mailbox.add("INBOX", mail(ANNA), NOW - 50 * H)
    result = scan()
    assert result.code == 3 and result.json()["overdue"] == []
    assert "holds no message from me@mydomain.example" in result.err
    named = scan(sent_folders=["Sent"])
    assert named.code == 1 and len(named.json()["overdue"]) == 1


def test_missing_watched_folder_is_a_config_error(sent_mailbox, scan):
    seed_coverage(sent_mailbox)
    result = scan(folders=["INBOX", "Support"])
    assert result.code == 3
    assert "folder 'Support' not found" in result.err


def test_several_accounts_and_account_filter(dovecot, sent_mailbox, run, tmp_path):
    seed_coverage(sent_mailbox)
    sent_mailbox.add("INBOX", mail(ANNA), NOW - 50 * H)
    common = (
        f'host = "127.0.0.1"\nport = {dovecot.port}\nsecurity = "plain"\n'
        f'password = "{dovecot.password}"\naddresses = ["{OWNER}"]\n'
    )
    config = tmp_path / "multi.toml"
    config.write_text(
        f'[[accounts]]\nname = "a"\nusername = "{sent_mailbox.user}"\n{common}'
        f'[[accounts]]\nname = "b"\nusername = "{sent_mailbox.user}"\n{common}'
    )
    both = run("scan", "--config", str(config), "--format", "json", "--as-of", NOW.isoformat())
    assert [i["account"] for i in both.json()["overdue"]] == ["a", "b"]
    one = run(
        "scan",
        "--config",
        str(config),
        "--format",
        "json",
        "--as-of",
        NOW.isoformat(),
        "--account",
        "b",
    )
    assert [a["name"] for a in one.json()["accounts"]] == ["b"]
    missing = run("scan", "--config", str(config), "--account", "nope")
    assert missing.code == 2


def test_wrong_password_exits_4_with_one_line(dovecot, mailbox, run, tmp_path):
    from tests.conftest import write_config

    config = write_config(tmp_path, dovecot, mailbox.user, password="wrong")
    result = run("scan", "--config", str(config))
    assert result.code == 4
    assert result.err.count("\n") == 1 and "login to 127.0.0.1 failed" in result.err
    assert "Traceback" not in result.err


def test_unreachable_server_exits_5(dovecot, mailbox, run, tmp_path):
    from tests.conftest import write_config
    from tests.dovecot import free_port

    config = write_config(tmp_path, dovecot, mailbox.user, port=free_port(), timeout="5s")
    result = run("scan", "--config", str(config))
    assert result.code == 5
    assert "refused the connection" in result.err and "Traceback" not in result.err


def test_an_account_from_accounts_dir_is_scanned(sent_mailbox, run, tmp_path, dovecot):
    """Issue 23, item 3: the account's keys in accounts.d/support.toml, none in the config."""
    from tests.conftest import write_config

    seed_coverage(sent_mailbox)
    sent_mailbox.add("INBOX", mail(ANNA, subject="From the file"), NOW - 30 * H)
    account = write_config(tmp_path, dovecot, sent_mailbox.user, name="support")
    folder = tmp_path / "accounts.d"
    folder.mkdir()
    (folder / "support.toml").write_text(account.read_text().replace("[[accounts]]\n", ""))
    (folder / "support.toml").chmod(0o600)
    config = tmp_path / "main.toml"
    config.write_text('accounts_dir = "accounts.d"\n')
    result = run("scan", "--format", "json", "--as-of", NOW.isoformat(), "--config", str(config))
    assert result.code == 1, result.err
    assert [e["account"] for e in result.json()["overdue"]] == ["support"]
