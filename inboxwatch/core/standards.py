"""Reply standards per sender, recipient, folder and subject: `[[accounts.rules]]`. Pure.

Rules are tried in order and the first that matches a message decides its window,
priority and reminders (or leaves it out: `ignore`). A message no rule matches keeps
the account's `window`. Windows may be counted in business time (core/clock.py).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from inboxwatch.core.clock import BusinessHours
from inboxwatch.core.model import MessageMeta
from inboxwatch.durations import format_duration, parse_window

PRIORITIES = ("high", "normal", "low")  # listed in this order in the digest


@dataclass(frozen=True)
class Window:
    """How long a message may wait: calendar time, or business hours or days."""

    length: timedelta
    business: str = ""  # "", "hours" or "days" (then `length` counts days, not time)

    def due(self, since: datetime, clock: BusinessHours | None) -> datetime:
        """When a message received at `since` becomes overdue."""
        if not self.business or clock is None:
            return since + self.length
        if self.business == "days":
            return clock.add(since, clock.day_length() * (self.length / timedelta(days=1)))
        return clock.add(since, self.length)

    @classmethod
    def of(cls, value: object) -> Window:
        """`24h`, `2d` (calendar time), `8 business hours`, `2 business days`."""
        return cls(*parse_window(value))

    def text(self) -> str:
        if self.business == "days":
            n = self.length / timedelta(days=1)
            return f"{n:g} business day{'' if n == 1 else 's'}"
        if self.business == "hours":
            n = self.length / timedelta(hours=1)
            return f"{n:g} business hour{'' if n == 1 else 's'}"
        return format_duration(self.length)


@dataclass(frozen=True)
class Rule:
    """One `[[accounts.rules]]` entry; an empty criterion matches everything, a list
    matches when any of its entries does, and every criterion given must match."""

    index: int  # 1-based, as the user counts the entries of the config
    senders: tuple[str, ...] = ()  # `from`: globs on the correspondent, lower-cased
    to: tuple[str, ...] = ()  # globs on the owner's address the message came to
    folders: tuple[str, ...] = ()  # globs on the folder (case as the server names it)
    subjects: tuple[re.Pattern[str], ...] = ()
    window: Window | None = None
    priority: str = ""
    ignore: bool = False
    remind: str = ""  # "once" | "daily"; "" is the account's (daily)

    @property
    def label(self) -> str:
        return f"rules[{self.index}]"

    def matches(self, msg: MessageMeta, to_owner: tuple[str, ...]) -> bool:
        """`to_owner`: the owner's addresses among the message's recipients (lower-cased)."""
        if self.senders:
            sender = msg.sender.address.lower() if msg.sender else ""
            if not any(fnmatch.fnmatchcase(sender, glob) for glob in self.senders):
                return False
        if self.to and not any(
            fnmatch.fnmatchcase(address, glob) for address in to_owner for glob in self.to
        ):
            return False
        if self.folders and not any(fnmatch.fnmatchcase(msg.folder, g) for g in self.folders):
            return False
        return not self.subjects or any(p.search(msg.subject) for p in self.subjects)
