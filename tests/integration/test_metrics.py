"""`inboxwatch run` with `service.health_port`: /metrics scraped and parsed with the
Prometheus text parser, /healthz, and a port already taken."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import OWNER, mail
from tests.dovecot import free_port

pytestmark = pytest.mark.dovecot
H = timedelta(hours=1)


def config_text(dovecot, user, tmp_path, port: int) -> str:
    return (
        f'[[accounts]]\nname = "work"\nhost = "127.0.0.1"\nport = {dovecot.port}\n'
        f'security = "plain"\nusername = "{user}"\npassword = "{dovecot.password}"\n'
        f'addresses = ["{OWNER}"]\n'
        f'[[accounts]]\nname = "down"\nhost = "127.0.0.1"\nport = {free_port()}\n'
        f'security = "plain"\nusername = "x"\npassword = "y"\naddresses = ["{OWNER}"]\n'
        f"[service]\nhealth_port = {port}\n"
        f'[state]\npath = "{tmp_path / "state.db"}"\n'
    )


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_and_health_on_the_health_port(dovecot, sent_mailbox, tmp_path):
    now = datetime.now(UTC)
    sent_mailbox.add("Sent", mail(OWNER, "x@y.example"), now - 72 * H)
    for n in range(2):
        sent_mailbox.add("INBOX", mail("Anna <anna@c.example>", subject=f"Q{n}"), now - 30 * H)
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(config_text(dovecot, sent_mailbox.user, tmp_path, port))
    process = subprocess.Popen(
        [sys.executable, "-m", "inboxwatch", "run", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline, samples = time.monotonic() + 30, {}
        while time.monotonic() < deadline:
            try:
                samples = scrape(f"{base}/metrics")
            except OSError:
                samples = {}
            if ("inboxwatch_polls_total", (("account", "work"), ("result", "ok"))) in samples:
                break
            time.sleep(0.1)
        with pytest.raises(urllib.error.HTTPError) as unhealthy:
            urllib.request.urlopen(f"{base}/healthz", timeout=10)
        with urllib.request.urlopen(f"{base}/livez", timeout=10) as answer:
            live = answer.read().decode()
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{base}/nothing", timeout=10)
    finally:
        process.send_signal(signal.SIGTERM)
        stderr = process.communicate(timeout=20)[1]
    assert process.returncode == 0, stderr
    work, down = (("account", "work"),), (("account", "down"),)
    assert samples[("inboxwatch_polls_total", (*work, ("result", "ok")))] == 1
    assert samples[("inboxwatch_polls_total", (*down, ("result", "failed")))] == 1
    assert samples[("inboxwatch_overdue_threads", work)] == 2
    assert samples[("inboxwatch_waiting_threads", work)] == 0
    assert samples[("inboxwatch_sign_in_needed", work)] == 0
    assert abs(samples[("inboxwatch_last_success_timestamp_seconds", work)] - time.time()) < 60
    assert ("inboxwatch_last_success_timestamp_seconds", down) not in samples  # never read
    assert samples[("inboxwatch_messages_fetched_total", ())] == 3
    assert samples[("inboxwatch_digests_sent_total", ())] == 0
    # One account never polled successfully: unhealthy, with why.
    assert unhealthy.value.code == 503 and b"down: no successful poll yet" in unhealthy.value.read()
    assert missing.value.code == 404
    assert live.startswith("live: a poll ended")  # this process polls, whatever the accounts
    assert f"serving /metrics and /healthz on http://127.0.0.1:{port}" in stderr


def test_a_taken_port_is_one_clear_line_and_exit_3(dovecot, tmp_path, run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "config.toml"
        config.write_text(config_text(dovecot, "u", tmp_path, port))
        result = run("run", "--config", str(config))
    assert result.code == 3
    assert f"service.health_port: cannot listen on 127.0.0.1:{port}" in result.err
    errors = [line for line in result.err.splitlines() if "WARNING" not in line]
    assert len(errors) == 1 and "Traceback" not in result.err


def test_a_process_whose_polls_stopped_ending_is_not_live(tmp_path):
    """/livez: three poll intervals and an account's timeout without a poll ending (a
    hung poll) is "stuck", so an orchestrator restarts that one process."""
    from inboxwatch.config import Settings
    from inboxwatch.delivery.smtp import StdoutSender
    from inboxwatch.service.scheduler import Scheduler

    settings = Settings(
        accounts=[{"name": "w", "host": "h", "username": "u", "addresses": [OWNER]}],
        service={"poll_interval": "1m", "account_timeout": "1m"},
        state={"path": str(tmp_path / "state.db")},
    )
    scheduler = Scheduler(settings, StdoutSender())
    try:
        assert scheduler.live()[0]
        scheduler.beat -= 4 * 60 + 1
        ok, reason = scheduler.live()
        assert not ok and reason == "no poll has ended for 241s (more than 240s)"
    finally:
        scheduler.close()
