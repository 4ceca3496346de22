"""The digest's links, clicked in a real headless browser: the webmail link reaches its
server with every value intact, and the reply link is a mailto the browser reads back."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from inboxwatch.cli.common import DEMO_AS_OF as NOW
from inboxwatch.config import Account, Digest
from inboxwatch.core.model import AccountSummary, Address, Finding, Report, Stats
from inboxwatch.delivery.digest import render
from tests.browser import browser
from tests.unit.test_links import VALUES

MESSAGE_ID = "<a+b/c&d@x.example>"


def report() -> Report:
    finding = Finding(
        account="work",
        thread_id=MESSAGE_ID,
        subject=str(VALUES["subject"]),
        correspondent=Address("Anna", "anna+x@client.example"),
        waiting_since=NOW - timedelta(hours=30),
        message_ids=(MESSAGE_ID,),
        folder=str(VALUES["folder"]),
        uids=(42,),
        messages_in_thread=1,
        last_reply=None,
        reason="Anna wrote; no reply from you in this thread",
    )
    summary = AccountSummary("work", ("INBOX",), ("Sent",), 1, 1, timedelta(hours=24))
    return Report(NOW, NOW, timedelta(hours=24), [summary], [finding], [], Stats())


class Webmail(BaseHTTPRequestHandler):
    """Stands in for a webmail: keeps the paths it was asked for."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Webmail.seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<title>webmail</title>")

    def log_message(self, *args: object) -> None:
        pass


def test_links_are_right_and_encoded_when_clicked(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Webmail)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    account = Account(
        name="work",
        host="imap.example.com",
        username="me+tag@example.com",
        open_url=f"{base}/open/{{folder}}?id={{message_id}}&s={{subject}}&u={{uid}}&a={{address}}",
    )
    page_file = tmp_path / "digest.html"
    page_file.write_text(render(report(), Digest(to=["me@x.example"]), NOW, [account]).html)
    try:
        with browser(tmp_path / "profile") as page:
            page.open(page_file.as_uri())
            reply = page.evaluate("document.querySelector('a[href^=\"mailto:\"]').href")
            page.click(f'a[href^="{base}"]')
            deadline = time.monotonic() + 20
            while page.evaluate("document.title") != "webmail":  # the browser followed it
                assert time.monotonic() < deadline, "the click did not open the link"
                time.sleep(0.05)
    finally:
        server.shutdown()
    path, _, query = Webmail.seen[0].partition("?")
    assert unquote(path) == "/open/Projekte/2026"
    assert parse_qs(query) == {
        "id": ["a+b/c&d@x.example"],
        "s": [VALUES["subject"]],
        "u": ["42"],
        "a": ["me+tag@example.com"],
    }
    parts = urlsplit(reply)
    assert unquote(parts.path) == "anna+x@client.example"
    assert parse_qs(parts.query) == {
        "subject": [f"Re: {VALUES['subject']}"],
        "In-Reply-To": [MESSAGE_ID],
    }


def test_on_a_375_px_phone_the_reply_standard_stacks(tmp_path):
    from tests.integration.test_digest import demo_report

    page_file = tmp_path / "digest.html"
    page_file.write_text(render(demo_report(), Digest(to=["me@x.example"]), NOW).html)
    with browser(tmp_path / "profile") as page:
        page.call(
            "Emulation.setDeviceMetricsOverride",
            width=375,
            height=800,
            deviceScaleFactor=2,
            mobile=True,
        )
        page.open(page_file.as_uri())
        boxes = page.evaluate(
            "[...document.querySelectorAll('.stat')].map(e => {"
            "const r = e.getBoundingClientRect(); return [r.x, r.y, r.width]; })"
        )
        overflow = page.evaluate("document.documentElement.scrollWidth")
    assert len(boxes) == 3
    assert len({round(y) for _, y, _ in boxes}) == 3  # one under the other
    assert all(width > 250 for _, _, width in boxes)  # each as wide as the card
    assert overflow <= 375  # nothing wider than the screen


def test_a_synthetic_id_is_never_cited_in_a_link():
    """A message without a Message-ID has a made-up one: no search for it, no In-Reply-To."""
    from inboxwatch.delivery.digest import context

    synthetic = "<0123abcd@synthetic.inboxwatch.invalid>"
    base = report()
    base.overdue = [base.overdue[0]._replace(message_ids=(synthetic,))]
    account = Account(name="work", host="h.example", username="me@x.example", open_url="gmail")
    [item] = context(base, Digest(to=["me@x.example"]), NOW, [account])["accounts"][0]["overdue"]
    assert item["open_url"] == "" and "In-Reply-To" not in item["reply_url"]
    assert item["reply_url"].startswith("mailto:anna%2Bx@client.example?subject=Re%3A%20")


def test_the_weekly_chart_draws_each_bar_as_wide_as_its_share(tmp_path):
    """Issue 19, item 6: the chart is table cells, no image; in a real browser the bar of
    a week with 60% answered in time takes 60% of its track."""
    from tests.integration.test_digest import demo_report

    page_file = tmp_path / "digest.html"
    page_file.write_text(render(demo_report(), Digest(to=["me@x.example"]), NOW).html)
    with browser(tmp_path / "profile") as page:
        page.open(page_file.as_uri())
        bars = page.evaluate(
            "[...document.querySelectorAll('td.bar')].map(e => e.getBoundingClientRect().width"
            " / e.closest('table').getBoundingClientRect().width)"
        )
        images = page.evaluate("document.images.length")
    assert [round(share, 2) for share in bars] == [0.6]  # 10 Nov: 0%, no bar; 17 Nov: 60%
    assert images == 0
