"""Build MessageMeta records directly, for the pure core's unit tests."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from inboxwatch.core.model import Address, MessageMeta

T0 = datetime(2026, 11, 1, tzinfo=UTC)
_uids = itertools.count(1)


def msg(
    mid: str | None = None,
    *,
    refs: tuple[str, ...] = (),
    irt: tuple[str, ...] = (),
    sender: str = "anna@client.example",
    to: tuple[str, ...] = ("me@mydomain.example",),
    hours: float = 0,
    folder: str = "INBOX",
    subject: str = "Hello",
    **extra: Any,
) -> MessageMeta:
    return MessageMeta(
        folder=folder,
        uid=next(_uids),
        message_id=f"<{mid}>" if mid else None,
        in_reply_to=tuple(f"<{r}>" for r in irt),
        references=tuple(f"<{r}>" for r in refs),
        subject=subject,
        sender=Address("", sender),
        received=T0 + timedelta(hours=hours),
        to=tuple(Address("", a) for a in to),
        **extra,
    )
