"""The digest to chat and push services through Apprise (`digest.notify`): ntfy, Slack,
Matrix, Telegram, a webhook (`json://`)… An optional extra: `pip install inboxwatch[notify]`.

A Sender like SMTP's: it takes the composed digest and posts its subject as the title
and its plain-text part as the body, so the digest ledger sends it once per period.
Apprise URLs carry tokens: errors name only the service (the URL's scheme).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Any

from inboxwatch.errors import ConfigError, DeliveryError

log = logging.getLogger(__name__)


def service_of(url: str) -> str:
    """What a log line may say of an Apprise URL: its scheme, never its tokens."""
    return url.partition("://")[0] + "://…"


class AppriseSender:
    def __init__(self, urls: Sequence[str]) -> None:
        try:
            import apprise
        except ImportError as exc:
            raise ConfigError(
                "digest.notify needs Apprise: pip install 'inboxwatch[notify]'"
            ) from exc
        self.urls = list(urls)
        self.apprise: Any = apprise
        for url in self.urls:  # each URL checked at start: a typo is a config error
            if apprise.Apprise.instantiate(url) is None:
                raise ConfigError(
                    f"digest.notify: {service_of(url)} is not a URL Apprise knows "
                    "(see https://github.com/caronc/apprise/wiki)"
                )

    def send(self, msg: EmailMessage) -> None:
        """Post the digest to every URL; DeliveryError names the services that failed."""
        body = msg.get_body(("plain",))
        text = body.get_content() if isinstance(body, EmailMessage) else ""
        failed = []
        for url in self.urls:  # one at a time, to say which one failed
            notifier = self.apprise.Apprise()
            notifier.add(url)
            if not notifier.notify(title=str(msg["Subject"]), body=text):
                failed.append(service_of(url))
        if failed:
            raise DeliveryError(
                f"the digest could not be posted to {', '.join(failed)}; "
                "it is tried again at the next poll (-vv shows Apprise's reason)"
            )
