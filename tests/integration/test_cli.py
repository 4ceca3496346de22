"""The command line: demo, exit codes, the pinned JSON envelope, local sources."""

from __future__ import annotations

import json
import mailbox
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from tests.conftest import NOW, OWNER, write_config

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_without_an_account(run):
    result = run("demo")
    assert result.code == 0
    for expected in (
        "Kim Lee",
        "Anna Keller",
        "Jörg Müller",
        "Ben Okafor",
        "4 conversations waiting > 24h",
    ):
        assert expected in result.out
    table, _, rest = result.out.partition("Waiting on ")
    for excluded in (
        "Design Weekly",
        "CloudHost",
        "Friday drinks",
        "Frank",
        "Grace",
        "Hugo",
        "Carla",
    ):
        assert excluded not in table
    # Issue 19, item 1: Sam answered Frank and Hugo days ago; they owe Sam an answer.
    assert "Frank Moreau <frank@startup.example> for 4 days 21 hours: Re: Website quote" in rest
    assert "Waiting on Hugo Blanc <hugo@type.example> for 3 days 15 hours" in result.out


def test_demo_json_pins_the_contract_envelope(run):
    report = run("scan", "--demo", "--format", "json")
    assert report.code == 1  # scan's exit code: something is overdue
    data = report.json()
    assert list(data) == [
        "version",
        "generated_at",
        "as_of",
        "accounts",
        "overdue",
        "invitations",
        "awaiting",
        "stats",
        "errors",
    ]
    [frank, _hugo] = data["awaiting"]
    assert frank["recipient"] == {"name": "Frank Moreau", "address": "frank@startup.example"}
    assert (
        frank["reason"]
        == "you wrote to Frank Moreau <frank@startup.example>; no answer from them since"
    )
    assert "correspondent" not in frank
    assert data["version"] == 1 and data["as_of"] == "2026-11-24T09:00:00Z"
    assert set(data["accounts"][0]) == {"name", "folders", "sent_folders", "messages", "threads"}
    item = data["overdue"][0]
    assert {
        "account",
        "thread_id",
        "subject",
        "correspondent",
        "waiting_since",
        "waiting_hours",
        "message_ids",
        "folder",
        "uids",
        "reasons",
        *("priority", "rule", "due", "business_waiting_hours", "escalated", "digests_seen"),
    } <= set(item)
    # Issue 19: no rules, business hours or digests in the demo.
    assert (item["priority"], item["rule"], item["business_waiting_hours"]) == (
        "normal",
        None,
        None,
    )
    assert item["due"] == "2026-11-17T10:05:00Z" and item["digests_seen"] == 0
    # Issue 18, item 4: the structured why beside the one-line reason.
    assert item["reasons"] == [
        {"kind": "window", "message_id": None, "at": None, "detail": "1d"},
        {
            "kind": "pending",
            "message_id": "<kim-1@museum.example>",
            "at": "2026-11-16T10:05:00Z",
            "detail": "Kim Lee <kim@museum.example>",
        },
        {
            "kind": "last_reply",
            "message_id": "<sam-kim-1@studio.example>",
            "at": "2026-11-10T17:00:00Z",
            "detail": "your reply",
        },
    ]
    assert set(data["stats"]) == {
        "threads",
        "answered",
        "overdue",
        "pending",
        "excluded",
        "snoozed",
        "muted",
        "reply_standard",
    }
    # Demo: Ben 6.5 h, Frank 4 h, Hugo 3 h (subject fallback); Kim, Anna, Jörg never;
    # Grace flagged \Answered (time unknown); Carla still inside the window.
    standard = data["stats"]["reply_standard"]
    assert {k: standard[k] for k in list(standard)[:5]} == {
        "conversations": 8,
        "answered": 4,
        "median_hours": 4.0,
        "p90_hours": 6.5,
        "within_window_share": 0.5,
    }
    # Issue 19, item 6: the last 7 days beside the 7 before, each week, per rule (null:
    # the account's window) and per priority, each with its `previous`.
    assert (standard["week"]["within_window_share"], standard["previous"]["conversations"]) == (
        0.6,
        1,
    )
    assert [w["start"] for w in standard["weeks"]] == [
        "2026-11-10T09:00:00Z",
        "2026-11-17T09:00:00Z",
    ]
    [default] = standard["rules"]
    assert default["rule"] is None and default["previous"]["within_window_share"] == 0.0
    assert list(standard["priorities"]) == ["normal"]
    assert data["stats"]["excluded"] == {"automated": 3, "cc_only": 1, "list": 1}
    waits = [i["waiting_hours"] for i in data["overdue"]]
    assert waits == sorted(waits, reverse=True)


def test_version_help_and_usage_errors(run):
    assert run("--version").code == 0
    assert run("scan", "--help").code == 0
    assert run("scan", "--bogus").code == 2
    assert run("scan", "--demo", "--window", "soon").code == 2
    assert run("scan", "--demo", "--as-of", "yesterday").code == 2
    assert run("scan", "--mbox", "x.mbox").code == 2  # needs --address


def test_missing_config_is_exit_3_with_one_line(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("INBOXWATCH_CONFIG", raising=False)
    result = run("scan")
    assert result.code == 3 and result.err.count("\n") == 1
    assert "no config file found" in result.err
    assert run("scan", "--config", str(tmp_path / "nope.toml")).code == 3


def test_traceback_only_with_vv(run, tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text("[[accounts]]\n")
    assert "Traceback" not in run("scan", "--config", str(bad)).err
    assert "Traceback" in run("scan", "-vv", "--config", str(bad)).err


def _message(
    sender: str,
    subject: str,
    hours_ago: float,
    mid: str | None,
    irt: str | None = None,
) -> EmailMessage:
    from datetime import timedelta

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, OWNER, subject
    msg["Date"] = format_datetime(NOW - timedelta(hours=hours_ago))
    if mid:
        msg["Message-ID"] = mid
    if irt:
        msg["In-Reply-To"] = irt
    msg.set_content("x")
    return msg


def test_local_mbox_and_maildir_sources(run, tmp_path):
    inbox = mailbox.mbox(tmp_path / "INBOX.mbox")
    inbox.add(_message("anna@client.example", "Q1", 50, "<q1@c>"))
    inbox.add(_message("bo@x.example", "Q2", 50, "<q2@x>"))
    inbox.close()
    sent = mailbox.mbox(tmp_path / "Sent.mbox")
    sent.add(_message(OWNER, "Re: Q1", 40, "<r1@m>", "<q1@c>"))
    sent.close()
    args = ("scan", "--format", "json", "--as-of", NOW.isoformat(), "--address", OWNER)
    result = run(
        *args, "--mbox", str(tmp_path / "INBOX.mbox"), "--mbox", str(tmp_path / "Sent.mbox")
    )
    assert result.code == 1, result.err
    assert [i["subject"] for i in result.json()["overdue"]] == ["Q2"]

    root = tmp_path / "Mail"  # mbsync layout: one Maildir per folder
    root.mkdir()
    for name, msgs in (
        ("INBOX", [_message("anna@client.example", "Q1", 50, "<q1@c>")]),
        ("Sent", [_message(OWNER, "Re: Q1", 40, "<r1@m>", "<q1@c>")]),
    ):
        box = mailbox.Maildir(root / name)
        for m in msgs:
            box.add(m)
    result = run(*args, "--maildir", str(root))
    assert result.code == 0, result.out + result.err


def test_console_script_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "inboxwatch", "demo", "--format", "json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert '"version": 1' in result.stdout


def test_core_imports_no_io_libraries():
    code = (
        "import sys, inboxwatch.core.threads, inboxwatch.core.rules, inboxwatch.core.unanswered, "
        "inboxwatch.core.model, inboxwatch.core.parse; "
        "print(sorted(m for m in ('imapclient','smtplib','apscheduler','click','rich') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_progress_shows_fetched_of_total_and_rate_only_on_a_terminal(capsys):
    import io

    from rich.console import Console
    from rich.progress import Progress

    from inboxwatch.cli.common import RatedBar, progress_bar

    with progress_bar(True) as progress:  # pytest's stderr is no terminal
        assert progress is None
    out = io.StringIO()
    with Progress(console=Console(file=out, force_terminal=True, width=100)) as bar:
        rated = RatedBar(bar)
        rated.expect(1000)
        rated.advance(1000)
        rated.expect(500)  # the next folder: its own total, never a total that grows
        rated.advance(200)
        task = bar.tasks[0]
        assert (task.total, task.completed, task.description) == (500, 200, "reading folder 2")
        assert task.fields["rate"].endswith("/s") and rated.done == 1200


def test_config_from_the_environment_alone_from_xdg_and_before_the_subcommand(
    run, tmp_path, monkeypatch, dovecot, sent_mailbox
):
    """A container configured by variables alone; $XDG_CONFIG_HOME; `--config` first."""
    monkeypatch.chdir(tmp_path)  # no ./config.toml
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("INBOXWATCH_CONFIG", raising=False)
    account = {
        "name": "work",
        "host": "127.0.0.1",
        "port": dovecot.port,
        "security": "plain",
        "username": sent_mailbox.user,
        "addresses": [OWNER],
    }
    monkeypatch.setenv("INBOXWATCH_ACCOUNTS", json.dumps([account]))
    monkeypatch.setenv("INBOXWATCH_ACCOUNT_WORK_PASSWORD", dovecot.password)
    monkeypatch.setenv("INBOXWATCH_STATE__PATH", str(tmp_path / "state.db"))
    checked = run("check")
    assert checked.code == 0, checked.out + checked.err
    assert "config from the environment (INBOXWATCH_*): valid" in checked.out
    monkeypatch.delenv("INBOXWATCH_ACCOUNTS")
    missing = run("scan")
    assert missing.code == 3 and "or set INBOXWATCH_ACCOUNTS" in missing.err
    xdg = tmp_path / "xdg" / "inboxwatch"
    xdg.mkdir(parents=True)
    written = write_config(tmp_path, dovecot, sent_mailbox.user)
    (xdg / "config.toml").write_text(written.read_text())
    (xdg / "config.toml").chmod(0o600)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert run("scan").code == 0
    elsewhere = tmp_path / "elsewhere.toml"
    written.rename(elsewhere)
    first = run("--config", str(elsewhere), "scan", "--format", "json")
    assert first.code == 0 and first.json()["accounts"][0]["name"] == "work"
    assert run("--config", str(tmp_path / "nope.toml"), "scan").code == 3


def test_an_unreadable_secret_file_is_one_line_at_start_up_with_the_fix(tmp_path):
    """The container's case: a root-owned 0600 secret, inboxwatch running as another user.
    As root the test runs inboxwatch as `nobody` (setpriv); as a plain user the file is
    made unreadable (chmod 000) instead."""
    base = Path(tempfile.mkdtemp(prefix="inboxwatch-secret-"))
    try:
        base.chmod(0o755)  # nobody must reach the config, not the secret
        secret = base / "imap_password"
        secret.write_text("s3cret\n")
        secret.chmod(0o600 if os.geteuid() == 0 else 0o000)
        config = base / "config.toml"
        config.write_text(
            '[[accounts]]\nname = "work"\nhost = "127.0.0.1"\nusername = "me@x.example"\n'
            f'password_file = "{secret}"\n[state]\npath = "{base}/state.db"\n'
        )
        config.chmod(0o644)
        drop = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        command = [sys.executable, "-m", "inboxwatch", "run", "--config", str(config)]
        done = subprocess.run(
            (drop if os.geteuid() == 0 else []) + command,
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert done.returncode == 3, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "accounts[work].password_file" in done.stderr and "cannot be read by uid" in done.stderr
    assert "mode 0600" in done.stderr or "mode 0000" in done.stderr
    assert "chown" in done.stderr and "s3cret" not in done.stderr


def test_log_format_json_gives_one_json_object_a_line(run, tmp_path, dovecot, sent_mailbox):
    config = write_config(tmp_path, dovecot, sent_mailbox.user)
    config.write_text(config.read_text() + f'[state]\npath = "{tmp_path / "s.db"}"\n')
    polled = run("run", "--once", "--log-format", "json", "--config", str(config))
    failed = run("--log-format", "json", "scan", "--config", str(tmp_path / "nope.toml"))
    assert polled.code == 0 and failed.code == 3
    entries = [json.loads(line) for line in (polled.err + failed.err).splitlines()]
    assert {tuple(sorted(e)) for e in entries} == {("level", "logger", "message", "time")}
    assert [e["message"] for e in entries if e["message"].startswith("poll:")]
    assert entries[-1]["level"] == "error" and "nope.toml does not exist" in entries[-1]["message"]
    assert all(datetime.fromisoformat(e["time"]).tzinfo is not None for e in entries)


def test_local_audit_flags_and_csv_read_back(run, tmp_path):
    """--since, --lookback, --include-cc, --limit and --format csv on local mail; a subject
    written like a formula stays text in the spreadsheet."""
    import csv
    import io

    inbox = mailbox.mbox(tmp_path / "INBOX.mbox")
    inbox.add(_message("anna@client.example", '=HYPERLINK("http://x.example")', 30, "<a@c>"))
    inbox.add(_message("bo@x.example", "Old question", 24 * 40, "<b@x>"))  # 40 days ago
    cc_only = _message("cy@y.example", "FYI", 50, "<c@y>")
    cc_only.replace_header("To", "team@y.example")
    cc_only["Cc"] = OWNER
    inbox.add(cc_only)
    inbox.close()
    sent = mailbox.mbox(tmp_path / "Sent.mbox")
    sent.add(_message(OWNER, "Note", 100, "<n@m>"))  # the owner's own, for coverage
    sent.close()
    args = ("scan", "--as-of", NOW.isoformat(), "--address", OWNER)
    box = ("--mbox", str(tmp_path / "INBOX.mbox"), "--mbox", str(tmp_path / "Sent.mbox"))

    def subjects(*extra: str) -> list[str]:
        result = run(*args, *box, "--format", "csv", *extra)
        assert result.code in (0, 1), result.err
        rows = list(csv.DictReader(io.StringIO(result.out)))
        return [row["subject"] for row in rows]

    assert subjects() == ['\'=HYPERLINK("http://x.example")']  # 30-day lookback, no Cc
    assert subjects("--lookback", "60d") == ["Old question", '\'=HYPERLINK("http://x.example")']
    assert subjects("--since", "2026-10-01") == subjects("--lookback", "60d")
    assert subjects("--include-cc") == ["FYI", '\'=HYPERLINK("http://x.example")']
    limited = run(*args, *box, "--lookback", "60d", "--limit", "1", "--format", "json")
    assert [e["subject"] for e in limited.json()["overdue"]] == ["Old question"]
    assert limited.code == 1 and "1 more not shown (--limit)" in limited.err
    assert run(*args, *box, "--since", "2026-10-01", "--lookback", "2d").code == 2


def test_scan_overrides_reach_an_imap_accounts_plan():
    from datetime import timedelta

    from inboxwatch.config import Account
    from inboxwatch.service.plans import Overrides, plan_of

    account = Account(name="w", host="h", username="u@x.example", password="p")
    plan = plan_of(account, Overrides(timedelta(hours=2), timedelta(days=90), include_cc=True))
    assert (plan.window, plan.lookback) == (timedelta(hours=2), timedelta(days=90))
    assert plan.policy.include_cc
    assert plan_of(account).lookback == account.lookback and not plan_of(account).policy.include_cc


def test_eml_folders_and_what_a_wrong_local_path_says(run, tmp_path):
    """A folder of .eml files is a folder (--eml); given to --maildir it says so; a local
    scan without a sent folder points at --sent-folder, the flag, not a config key."""
    export = tmp_path / "export"
    for name, msgs in (
        (
            "Inbox",
            [
                _message("anna@client.example", "Q1", 50, "<q1@c>"),
                _message("bo@x.example", "Q2", 50, "<q2@x>"),
            ],
        ),
        ("Ausgang-Archiv", [_message(OWNER, "Re: Q1", 40, "<r1@m>", "<q1@c>")]),
    ):
        (export / name).mkdir(parents=True)
        for n, message in enumerate(msgs):
            (export / name / f"{n:03}.eml").write_bytes(message.as_bytes())
        (export / name / "notes.txt").write_text("not mail")
    args = ("scan", "--format", "json", "--as-of", NOW.isoformat(), "--address", OWNER)
    folders = ("--eml", str(export / "Inbox"), "--eml", str(export / "Ausgang-Archiv"))
    result = run(*args, *folders, "--sent-folder", "Ausgang-Archiv")
    assert result.code == 1, result.err
    assert [i["subject"] for i in result.json()["overdue"]] == ["Q2"]
    assert result.json()["accounts"][0]["sent_folders"] == ["Ausgang-Archiv"]
    # "Ausgang-Archiv" is no sent folder name inboxwatch knows: the error names the flag.
    undiscovered = run(*args, *folders)
    assert undiscovered.code == 3 and "set --sent-folder NAME" in undiscovered.err
    assert "accounts[" not in undiscovered.err
    wrong = run(*args, "--maildir", str(export / "Inbox"))
    assert wrong.code == 3
    assert f"holds .eml files, not a Maildir: use --eml {export / 'Inbox'}" in wrong.err
    empty = run(*args, "--maildir", str(tmp_path))
    assert empty.code == 3 and "is not a Maildir: it has no cur/ directory" in empty.err


def test_help_lists_every_command_without_cutting_it_short(run):
    result = run("--help")
    commands = result.out.split("Commands:")[1].strip().splitlines()
    assert len(commands) == 14 and all(not line.endswith("...") for line in commands), commands


def test_judgement_on_a_local_mbox(run, tmp_path):
    """Issue 18 items 3, 6, 7 and 8 on mail on disk, as through Dovecot."""
    inbox = mailbox.mbox(tmp_path / "INBOX.mbox")
    listed = _message("anna@client.example", "[PATCH] parser", 50, "<p1@c>")
    listed["Cc"] = "dev@lists.example"
    listed["List-Id"] = "Dev <dev.lists.example>"
    inbox.add(listed)  # a list's copy written To the owner: waits (item 6)
    github = _message("notifications@github.com", "Re: [x/y] Bug (#1)", 50, "<g1@github.com>")
    github["Reply-To"] = "reply+AB12@reply.github.com"
    github["X-GitHub-Reason"] = "mention"
    inbox.add(github)  # a tool's notification: left out (item 3)
    anonymous = _message("bo@x.example", "No id", 50, None)
    inbox.add(anonymous)  # no Message-ID: a stable synthetic id (item 8)
    inbox.close()
    sent = mailbox.mbox(tmp_path / "Sent.mbox")
    sent.add(_message(OWNER, "Note", 100, "<n@m>"))
    sent.close()
    args = ("scan", "--format", "json", "--as-of", NOW.isoformat(), "--address", OWNER)
    box = ("--mbox", str(tmp_path / "INBOX.mbox"), "--mbox", str(tmp_path / "Sent.mbox"))
    data = run(*args, *box).json()
    ids = {e["subject"]: e["message_ids"] for e in data["overdue"]}
    assert set(ids) == {"[PATCH] parser", "No id"}
    assert ids["No id"][0].endswith("@synthetic.inboxwatch.invalid>")
    again = {e["subject"]: e["message_ids"] for e in run(*args, *box).json()["overdue"]}
    assert again["No id"] == ids["No id"]  # stable from one scan to the next
    assert data["stats"]["excluded"] == {"automated": 1}
