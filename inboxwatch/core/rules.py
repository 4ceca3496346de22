""" "Expects a reply?" — named, pure predicates, each giving the reason it excludes a message.

The contract lists the rules; the extra signals below each cite where they
come from. Order matters only for the reason shown: the first rule that
matches names the exclusion.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache

from inboxwatch.core.clock import BusinessHours
from inboxwatch.core.model import Address, MessageMeta
from inboxwatch.core.standards import Rule as StandardRule


@dataclass(frozen=True)
class Owner:
    """Whose mailbox this is: addresses compared case-insensitively, `+tag` ignored."""

    addresses: frozenset[str]
    # Answers by address as written: a scan asks about the same few senders 100,000 times.
    _known: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, addresses: Sequence[str]) -> Owner:
        return cls(frozenset(normalise_address(a) for a in addresses))

    def is_address(self, address: str) -> bool:
        known = self._known.get(address)
        if known is None:
            known = self._known[address] = normalise_address(address) in self.addresses
        return known

    def wrote(self, msg: MessageMeta) -> bool:
        """The owner's own message: a reply wherever it was found."""
        if msg.sender is None or msg.sender_ambiguous:
            return False
        return self.is_address(msg.sender.address)

    def among(self, addresses: Sequence[Address]) -> bool:
        return any(self.is_address(a.address) for a in addresses)


def normalise_address(address: str) -> str:
    """`User+tag@Domain` -> `user@domain` (subaddressing, RFC 5233)."""
    local, at, domain = address.strip().lower().rpartition("@")
    if not at:
        return domain
    return f"{local.split('+', 1)[0]}@{domain}"


@dataclass(frozen=True)
class Policy:
    include_cc: bool = False
    ignore_senders: tuple[str, ...] = ()
    ignore_subjects: tuple[re.Pattern[str], ...] = field(default=())
    sent_folders: frozenset[str] = frozenset()
    # An IMAP keyword the user sets in their own client to say "handled, no reply needed";
    # read only. Lower-cased: keywords compare case-insensitively (RFC 9051 2.3.2).
    handled_keyword: str = ""
    closing_messages: bool = False  # a "thanks" after your reply needs none (core/refine.py)
    # Teammates' addresses or globs (lower-cased): their reply answers a shared inbox's mail.
    team: tuple[str, ...] = ()
    # `[[accounts.rules]]` in order, the business clock, and `vip_from_sent`'s people
    # (the correspondents you wrote to first, lower-cased; core/vip.py).
    rules: tuple[StandardRule, ...] = ()
    clock: BusinessHours | None = None
    vip_from_sent: bool = False
    vips: frozenset[str] = frozenset()
    escalate_after: timedelta = timedelta(0)  # overdue this long past its window: escalated

    def rule_for(self, msg: MessageMeta, owner: Owner) -> StandardRule | None:
        """The first rule matching the message, if any."""
        if not self.rules:
            return None
        to_owner = tuple(
            a.address.lower() for a in (*msg.to, *msg.cc) if owner.is_address(a.address)
        )
        return next((r for r in self.rules if r.matches(msg, to_owner)), None)

    def answers(self, msg: MessageMeta, owner: Owner) -> bool:
        """Yours, or your team's answer: either ends a wait."""
        return owner.wrote(msg) or self.team_reply(msg, owner)

    def team_reply(self, msg: MessageMeta, owner: Owner) -> bool:
        """A teammate's message to someone outside the team: an answer for the team (a
        note among the team, or to you alone, is not)."""
        if not self.team or msg.sender is None or owner.wrote(msg):
            return False
        if not self.teammate(msg.sender.address):
            return False
        return any(
            not owner.is_address(a.address) and not self.teammate(a.address)
            for a in (*msg.to, *msg.cc)
        )

    def teammate(self, address: str) -> bool:
        address = address.lower()
        return any(fnmatch.fnmatchcase(address, glob) for glob in self.team)

    def closes(self, flags: frozenset[str]) -> bool:
        """Marked answered (\\Answered), or handled with the user's own keyword."""
        if "\\Answered" in flags:
            return True
        return bool(self.handled_keyword) and any(
            f.lower() == self.handled_keyword for f in flags if not f.startswith("\\")
        )


@dataclass(frozen=True)
class Exclusion:
    rule: str  # the rule's name
    category: str  # the report's `stats.excluded` key
    reason: str  # what the user is told


_NOREPLY = re.compile(
    r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|dont[-_.]?reply|noreply[-_.].*|.*[-_.]noreply"
    r"|no[-_.]?response|bounces?(?:[-+].*)?|notifications?|mailer)$"
)
# post_master: Verizon's and Apache James' bounce sender (sisimai lhost samples).
_DAEMON = re.compile(r"^(?:mailer[-_]?daemon|post[-_]?master|mail[-_]?daemon)$")
# Exchange and other servers send out-of-office replies without Auto-Submitted
# (sisimai's rfc3834 samples); their subject prefixes are the remaining signal.
_AUTO_SUBJECT = re.compile(
    r"^(?:automatic reply|auto[- ]?reply|autoreply|auto[- ]?response|out of (?:the )?office"
    r"|abwesenheitsnotiz|automatische antwort|r[ée]ponse automatique|respuesta autom[áa]tica"
    r"|risposta automatica|automatisch antwoord|resposta autom[áa]tica|automatisk svar"
    r"|automaattinen vastaus|automatyczna odpowied[źz]|automatick[áa] odpov[ěe]d"
    r"|otomatik yan[ıi]t|автоматический ответ|自动回复|自動回覆|自動応答|自動返信|자동 회신"
    r"|undeliver(?:ed|able)(?: mail)?"
    r"|delivery status notification|mail delivery failed|returned mail)\b",
    re.IGNORECASE,
)

Rule = Callable[[MessageMeta, Owner, Policy], Exclusion | None]


def sent_copy(msg: MessageMeta, owner: Owner, policy: Policy) -> Exclusion | None:
    # Mail in the sent folder was sent from this mailbox: never mail waiting for you.
    # From an address missing from `addresses` it is not counted as a reply either.
    if msg.folder in policy.sent_folders:
        return Exclusion("sent_folder", "sent", f"in the sent folder {msg.folder!r}")
    return None


def deleted(msg: MessageMeta, owner: Owner, policy: Policy) -> Exclusion | None:
    if "\\Deleted" in msg.flags:
        return Exclusion("deleted", "deleted", "flagged \\Deleted")
    return None


def ignored(msg: MessageMeta, owner: Owner, policy: Policy) -> Exclusion | None:
    sender = msg.sender.address.lower() if msg.sender else ""
    for glob in policy.ignore_senders:
        if sender and fnmatch.fnmatchcase(sender, glob.lower()):
            return Exclusion("ignore_senders", "ignored", f"sender matches ignore_senders {glob!r}")
    for pattern in policy.ignore_subjects:
        if pattern.search(msg.subject):
            return Exclusion(
                "ignore_subjects", "ignored", f"subject matches ignore_subjects {pattern.pattern!r}"
            )
    rule = policy.rule_for(msg, owner)
    if rule is not None and rule.ignore:
        return Exclusion("rules", "ignored", f"{rule.label} says ignore")
    return None


def auto_submitted(msg: MessageMeta, owner: Owner, policy: Policy) -> Exclusion | None:
    # RFC 3834 5: any value other than "no" marks machine-sent mail.
    value = msg.auto_submitted.split(";", 1)[0].strip()
    if value and value != "no":
        return Exclusion("auto_submitted", "automated", f"Auto-Submitted: {value}")
    return None


def addressed_to_owner(msg: MessageMeta, owner: Owner, policy: Policy) -> bool:
    """The owner is named in To (or in Cc, with include_cc): written to them personally."""
    return owner.among(msg.to) or (policy.include_cc and owner.among(msg.cc))


def _discussion_to_owner(msg: MessageMeta, owner: Owner, policy: Policy) -> bool:
    """A discussion list's copy of mail sent to the owner personally (the usual "To:
    maintainer, Cc: list"): mail to them, not list traffic. Newsletters addressed to one
    reader carry a bulk mark (machine_header, checked first) or no List-Id; a list that
    personalises delivery (Mailman's "To: each member") names the owner alone, where mail
    written to them and the list names the list (or someone else) too."""
    if not msg.list_id or msg.machine or not addressed_to_owner(msg, owner, policy):
        return False
    return any(not owner.is_address(a.address) for a in (*msg.to, *msg.cc))


def precedence(msg: MessageMeta, owner: Owner, policy: Policy) -> Exclusion | None:
    value = msg.precedence.strip()
    if value in ("bulk", "list"):
        # List software sets either on a discussion list's copy; one written to the owner
        # personally is mail to them (issue 18). Bulk mail to one reader stays out.
        if _discussion_to_owner(msg, owner, policy):
            return None
        return Exclusion("precedence", "list", f"Precedence: {value}")
    if value in ("junk", "auto_reply"):
        return Exclusion("precedence", "automated", f"Precedence: {value}")
    return None


def machine_header(msg: MessageMeta, owner: Owner, policy: Policy) -> Exclusion | None:
    if not msg.machine:
        return None
    kind, _, header = msg.machine.partition(":")
    category = "bulk" if kind == "bulk" else "automated"
    what = {"bulk": "bulk mail", "notification": "a tool's notification"}.get(kind, "machine-sent")
    return Exclusion(f"{kind}_header", category, f"{what} ({header})")


def mailing_list(msg: MessageMeta, owner: Owner, policy: Policy) -> Exclusion | None:
    # RFC 2369 / RFC 2919: list software adds List-Id and List-Unsubscribe.
    if msg.list_headers and not _discussion_to_owner(msg, owner, policy):
        return Exclusion("list_headers", "list", "mailing-list mail (List-Id/List-Unsubscribe)")
    return None


def delivery_report(msg: MessageMeta, owner: Owner, policy: Policy) -> Exclusion | None:
    # RFC 6522 multipart/report covers DSNs (RFC 3464), MDNs and ARF feedback (RFC 5965).
    if msg.content_type.startswith("multipart/report"):
        return Exclusion("delivery_report", "automated", "delivery or feedback report")
    local = _local_part(msg.sender)
    if _DAEMON.match(local):
        return Exclusion("delivery_report", "automated", f"sent by {local}")
    if msg.null_sender:
        # RFC 5321 4.5.5 / RFC 3834 3.3: notifications are sent with an empty envelope sender.
        return Exclusion("null_sender", "automated", "empty envelope sender (Return-Path: <>)")
    return None


def auto_reply(msg: MessageMeta, owner: Owner, policy: Policy) -> Exclusion | None:
    if msg.autoreply_header:
        return Exclusion("autoreply_header", "automated", "X-Autoreply/X-Autorespond header")
    if _AUTO_SUBJECT.match(msg.subject):
        return Exclusion("auto_reply_subject", "automated", "automatic-reply subject")
    return None


def no_reply_sender(msg: MessageMeta, owner: Owner, policy: Policy) -> Exclusion | None:
    local = _local_part(msg.sender)
    if not _NOREPLY.match(local):
        return None
    personal = [a for a in msg.reply_to if not _NOREPLY.match(_local_part(a))]
    if personal:
        return None
    return Exclusion("no_reply_sender", "automated", f"no-reply sender {local}@…")


def cc_only(msg: MessageMeta, owner: Owner, policy: Policy) -> Exclusion | None:
    if policy.include_cc:
        return None
    if owner.among(msg.cc) and not owner.among(msg.to):
        return Exclusion("cc_only", "cc_only", "you were only in Cc")
    return None


def is_no_reply(address: str) -> bool:
    """noreply@, do-not-reply@, notifications@…: nobody answers from there."""
    return bool(_NOREPLY.match(address.lower().rpartition("@")[0]))


def _local_part(address: Address | None) -> str:
    if address is None:
        return ""
    return address.address.lower().rpartition("@")[0]


RULES: tuple[Rule, ...] = (
    sent_copy,
    deleted,
    ignored,
    auto_submitted,
    machine_header,
    precedence,
    mailing_list,
    delivery_report,
    auto_reply,
    no_reply_sender,
    cc_only,
)


def exclusion(msg: MessageMeta, owner: Owner, policy: Policy) -> Exclusion | None:
    """Why an inbound message does not expect a reply, or None when it does."""
    if _plainly_personal(msg, policy):
        return None  # what RULES would say, at a fraction of ten calls (most inbound mail)
    for rule in RULES:
        found = rule(msg, owner, policy)
        if found is not None:
            return found
    return None


def _plainly_personal(msg: MessageMeta, policy: Policy) -> bool:
    """A conservative screen: True only where no rule in RULES can match; anything that
    might (a Cc, any Auto-Submitted or Precedence, a policy list) goes through RULES.
    `tests/unit/test_rules.py` checks the implication on generated messages."""
    return not (
        msg.list_headers
        or msg.machine
        or msg.auto_submitted
        or msg.precedence
        or msg.null_sender
        or msg.autoreply_header
        or msg.cc
        or policy.ignore_senders
        or policy.ignore_subjects
        or policy.rules
        or msg.folder in policy.sent_folders
        or "\\Deleted" in msg.flags
        or msg.content_type.startswith("multipart/report")
        or _machine_sender(msg.sender)
        or _AUTO_SUBJECT.match(msg.subject)
    )


@lru_cache(maxsize=1 << 14)
def _machine_sender(sender: Address | None) -> bool:
    """A daemon's or a no-reply local part (a few senders write most mail: cached)."""
    local = _local_part(sender)
    return bool(_DAEMON.match(local) or _NOREPLY.match(local))
