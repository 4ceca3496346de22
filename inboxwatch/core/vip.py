"""VIP by behaviour (`vip_from_sent`): the people you wrote to first are the ones whose
answers matter most to you. Pure: `as_of` is a parameter."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta

from inboxwatch.core.model import MessageMeta
from inboxwatch.core.rules import Owner, is_no_reply

VIP_SPAN = timedelta(days=90)
# A reply whose client dropped In-Reply-To and References still says so in its subject.
_REPLY_SUBJECT = re.compile(r"^\s*(?:re|aw|sv|vs|antw|fwd?|wg)\s*(?:\[\d+\])?\s*:", re.IGNORECASE)


def first_contacts(
    messages: Iterable[MessageMeta], owner: Owner, as_of: datetime
) -> frozenset[str]:
    """The To addresses (lower-cased) of your messages of the last 90 days that started a
    conversation: no In-Reply-To or References, no Re:/Fwd: subject. Only what the scan
    reads counts, so a `lookback` shorter than 90 days looks back that far only."""
    since = as_of - VIP_SPAN
    found: set[str] = set()
    for msg in messages:
        if not since <= msg.received <= as_of or msg.linked or not owner.wrote(msg):
            continue
        if _REPLY_SUBJECT.match(msg.subject):
            continue
        found.update(
            a.address.lower()
            for a in msg.to
            if not owner.is_address(a.address) and not is_no_reply(a.address)
        )
    return frozenset(found)
