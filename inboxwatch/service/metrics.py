"""The service's HTTP port (`service.health_port`): `/metrics` in the Prometheus text
format (prometheus-client) and `/healthz`, the same judgement as `inboxwatch health`.

Off unless a port is set. Bound to `service.health_address` (loopback by default; the
container listens on every address so a scraper beside it can reach it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, make_wsgi_app

from inboxwatch.errors import ConfigError
from inboxwatch.service.result import PollResult

log = logging.getLogger(__name__)
Health = Callable[[], tuple[bool, str]]


class Metrics:
    """What a scraper sees: per account, polls by result, overdue and waiting threads,
    the last successful poll and whether a sign-in is needed; per service, messages
    fetched, digests sent and polls that failed as a whole."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        account = ["account"]
        r = self.registry
        self.polls = Counter(
            "inboxwatch_polls", "Account polls, by result", [*account, "result"], registry=r
        )
        self.overdue = Gauge(
            "inboxwatch_overdue_threads", "Threads past their window", account, registry=r
        )
        self.waiting = Gauge(
            "inboxwatch_waiting_threads", "Threads waiting inside their window", account, registry=r
        )
        self.last_success = Gauge(
            "inboxwatch_last_success_timestamp_seconds",
            "When the account was last read successfully (Unix time)",
            account,
            registry=r,
        )
        self.signin = Gauge(
            "inboxwatch_sign_in_needed",
            "1 when the account waits for `inboxwatch auth`",
            account,
            registry=r,
        )
        self.fetched = Counter("inboxwatch_messages_fetched", "Message headers fetched", registry=r)
        self.digests = Counter("inboxwatch_digests_sent", "Digests delivered", registry=r)
        self.failed = Counter(
            "inboxwatch_poll_errors", "Polls that ended in an error (digest, state)", registry=r
        )
        self.duration = Gauge(
            "inboxwatch_last_poll_duration_seconds", "The last poll's length", registry=r
        )

    def observe(self, result: PollResult, accounts: Iterable[str], now: datetime) -> None:
        report = result.report
        read = {summary.name for summary in report.accounts}
        failed = {e.account for e in report.errors if e.exit_code > 1}
        signin = {e.account for e in report.errors if e.kind == "signin"}
        for name in accounts:
            ok = name in read and name not in failed
            self.polls.labels(name, "ok" if ok else "failed").inc()
            self.signin.labels(name).set(1 if name in signin else 0)
            if name in read:
                self.last_success.labels(name).set(now.timestamp())
                overdue, waiting = result.count(name)
                self.overdue.labels(name).set(overdue)
                self.waiting.labels(name).set(waiting)
        self.fetched.inc(result.fetched)
        self.duration.set(result.seconds)
        if result.digest:
            self.digests.inc(len(result.digest.split("; ")))


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def serve(address: str, port: int, metrics: Metrics, health: Health, live: Health) -> _Server:
    """Start the HTTP port in a daemon thread; `shutdown()` stops it. /healthz: every
    account read lately (the whole service's health, from the state); /livez: this
    process's polls still end (a liveness probe: restarting it helps)."""
    checks = {"/healthz": (health, "healthy", "unhealthy"), "/livez": (live, "live", "stuck")}
    prometheus = make_wsgi_app(metrics.registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return list(prometheus(environ, start_response))
        if path in checks:
            check, good, bad = checks[path]
            ok, reason = check()
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
            return [f"{good if ok else bad}: {reason}\n".encode()]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"inboxwatch: /metrics, /healthz or /livez\n"]

    try:
        server = make_server(address, port, app, _Server, _Quiet)
    except OSError as exc:
        raise ConfigError(
            f"service.health_port: cannot listen on {address}:{port} ({exc.strerror}); "
            "choose a free port or set health_port = 0"
        ) from exc
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    log.info("serving /metrics and /healthz on http://%s:%s", address, server.server_port)
    return server
