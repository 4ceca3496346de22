"""One scan: for each account, read -> thread -> judge, and collect one Report.

Per-account isolation: an account that cannot be read is an error in the
report, and the other accounts still run.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from inboxwatch.core.awaiting import OwedMemo, awaiting
from inboxwatch.core.bodies import Bodies
from inboxwatch.core.fanout import side_by_side
from inboxwatch.core.incremental import ThreadMemo
from inboxwatch.core.model import AccountSummary, MessageMeta, Report, ReportError, Thread, by_wait
from inboxwatch.core.ports import FolderInfo, MailSource, Progress, discover_sent
from inboxwatch.core.refine import RefineMemo, refine
from inboxwatch.core.rules import Owner, Policy
from inboxwatch.core.standards import Window
from inboxwatch.core.threads import Roles, build_threads
from inboxwatch.core.unanswered import Outcome, evaluate
from inboxwatch.core.verdicts import EvalMemo
from inboxwatch.core.vip import first_contacts
from inboxwatch.errors import ConfigError, InboxwatchError, ServerError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Knobs:
    """Where the user sets what an error asks for: an account's config keys, or (mail on
    disk, scanned without a config) the scan's own flags."""

    sent: str
    addresses: str
    folders: str

    @staticmethod
    def of_account(name: str) -> Knobs:
        key = f"accounts[{name}]"
        return Knobs(f"{key}.sent_folders", f"{key}.addresses", key)


LOCAL_KNOBS = Knobs("--sent-folder NAME", "--address", "the folder names given")


@dataclass(frozen=True)
class AccountPlan:
    """What to scan for one account, whatever the source."""

    name: str
    addresses: tuple[str, ...]
    folders: tuple[str, ...] | None  # None: every folder that is not a sent folder (local)
    sent_folders: tuple[str, ...]  # empty: discover
    window: timedelta
    lookback: timedelta
    policy: Policy
    knobs: Knobs | None = None  # None: the account's config keys
    followup_after: timedelta = timedelta(0)  # 0: nobody's answer to you is awaited

    @property
    def reply_window(self) -> Window:
        """The account's window, for messages no rule gives another."""
        return Window(self.window)

    @property
    def fix(self) -> Knobs:
        return self.knobs or Knobs.of_account(self.name)


SourceFactory = Callable[[], MailSource]
# Entered around one account's scan, by its name: the per-server connection cap.
Gate = Callable[[str], AbstractContextManager[object]]


@dataclass(frozen=True)
class OwnerCounterpart:
    """Contract rule 3: the owner's message was sent to the other's From or Reply-To."""

    owner: Owner

    def roles(self, msg: MessageMeta) -> Roles:
        # Tuples, not sets: the subject fallback holds these for every lone message.
        if self.owner.wrote(msg):
            return tuple(a.key for a in msg.to + msg.cc), ()
        if msg.sender is None:
            return (), ()
        if msg.list_headers:
            # A list's Reply-To is the list: matching it would join every member's post
            # to whichever thread the owner once wrote to the list (issue 18, item 7).
            return (), (msg.sender.key,)
        return (), (msg.sender.key, *(a.key for a in msg.reply_to))


def special_use(folder: str, available: Sequence[FolderInfo]) -> str:
    """`\\All` (a SPECIAL-USE attribute, RFC 6154) names the folder marked with it:
    Gmail's All Mail, every message once whatever its labels (archived mail too).
    A name, or an attribute no folder carries, stays as written."""
    if not folder.startswith("\\"):
        return folder
    wanted = folder.lower()
    return next((f.name for f in available if wanted in {u.lower() for u in f.special_use}), folder)


def counterpart_matcher(owner: Owner) -> OwnerCounterpart:
    return OwnerCounterpart(owner)


class _AccountScan:
    def __init__(self, plan: AccountPlan, source: MailSource, as_of: datetime) -> None:
        self.plan = plan
        self.source = source
        self.as_of = as_of
        self.errors: list[ReportError] = []

    def error(self, kind: str, message: str, code: int, folder: str | None = None) -> None:
        self.errors.append(ReportError(self.plan.name, kind, message, code, folder))

    def folders(self, available: Sequence[FolderInfo]) -> tuple[list[str], list[str]]:
        names = {f.name for f in available}
        sent = list(self.plan.sent_folders) or discover_sent(available)
        watched = (
            [special_use(f, available) for f in self.plan.folders]
            if self.plan.folders is not None
            else [n for n in names if n not in sent]
        )
        for folder in [*watched, *self.plan.sent_folders]:
            if folder not in names:
                self.error(
                    "folder",
                    f"folder {folder!r} not found; check {self.plan.fix.folders} "
                    f"(folders on the server: {', '.join(sorted(names)[:12])})",
                    ConfigError.exit_code,
                    folder,
                )
        return [f for f in watched if f in names], [f for f in sent if f in names]

    def read(self, folders: Sequence[str], progress: Progress | None) -> list[MessageMeta]:
        since = self.as_of - self.plan.lookback
        # Read last to first: the first watched folder (INBOX) stays selected for the body
        # checks that follow (core.refine), and a service's quick check left the last one
        # selected: an EXAMINE less each, a round trip. Kept in the given order.
        order = list(dict.fromkeys(folders))
        reading = order[::-1]  # each with the folder after it: the source may prepare it
        scans = {
            f: self.source.fetch_since(f, since, progress, then=after)
            for f, after in zip(reading, [*reading[1:], None], strict=True)
        }
        messages: list[MessageMeta] = []
        for folder in order:
            scan = scans[folder]
            for failure in scan.failures:
                self.errors.append(
                    ReportError(self.plan.name, "parse", failure.reason, 0, folder, failure.uid)
                )
            # --as-of: judge as if it were then; later mail is ignored.
            messages.extend(m for m in scan.messages if m.received <= self.as_of)
        return messages

    def coverage(self, messages: Sequence[MessageMeta], owner: Owner, sent: list[str]) -> bool:
        """Contract rule 6: without a usable sent folder every thread would look unanswered."""
        if not sent:
            self.error(
                "coverage",
                "no sent folder found, so replies cannot be seen and nothing is reported as "
                f"overdue; set {self.plan.fix.sent}",
                ConfigError.exit_code,
            )
            return False
        if self.plan.sent_folders:
            return True  # named explicitly: trusted even when empty
        owned = any(owner.wrote(m) for m in messages if m.folder in sent)
        inbound = any(not owner.wrote(m) for m in messages if m.folder not in sent)
        if inbound and not owned:
            self.error(
                "coverage",
                f"sent folder {', '.join(sent)} holds no message from "
                f"{', '.join(self.plan.addresses)} in the lookback, so nothing is reported as "
                f"overdue; check {self.plan.fix.addresses} or set {self.plan.fix.sent}",
                ConfigError.exit_code,
            )
            return False
        return True


@dataclass
class ScanMemo:
    """One account's threads and verdicts from its last scan (a running service keeps it)."""

    threads: ThreadMemo = field(default_factory=ThreadMemo)
    verdicts: EvalMemo = field(default_factory=EvalMemo)
    owed: OwedMemo = field(default_factory=OwedMemo)  # your messages awaiting an answer
    settled: RefineMemo = field(default_factory=RefineMemo)  # what flagged bodies said


@dataclass
class AccountRead:
    """One account's mail as a scan reads it, and how to judge it."""

    watched: list[str]
    sent: list[str]
    messages: list[MessageMeta]
    owner: Owner
    policy: Policy
    covered: bool  # contract rule 6: without a usable sent folder nothing is overdue
    errors: list[ReportError]


def folders_read(plan: AccountPlan, source: MailSource) -> tuple[list[str], list[str]] | None:
    """The folders a scan of `plan` reads (watched, sent), or None where one is missing."""
    job = _AccountScan(plan, source, datetime.min)  # as_of: not asked
    watched, sent = job.folders(source.list_folders())
    return None if job.errors else (watched, sent)


def read_account(
    plan: AccountPlan, source: MailSource, as_of: datetime, progress: Progress | None = None
) -> AccountRead:
    """Find the folders, read them, and check coverage (the source stays open)."""
    job = _AccountScan(plan, source, as_of)
    watched, sent = job.folders(source.list_folders())
    messages = job.read([*watched, *sent], progress)
    owner = Owner.of(plan.addresses)
    policy = replace(plan.policy, sent_folders=frozenset(sent))
    if policy.vip_from_sent:
        policy = replace(policy, vips=first_contacts(messages, owner, as_of))
    covered = job.coverage(messages, owner, sent)
    return AccountRead(watched, sent, messages, owner, policy, covered, job.errors)


def _judged(
    plan: AccountPlan, read: AccountRead, as_of: datetime, memo: ScanMemo | None
) -> tuple[list[Thread], Outcome]:
    """The account's threads and verdicts: all built and judged, or with `memo`, only
    the threads the changes since the last scan touch."""
    owner, policy = read.owner, read.policy
    counterpart = counterpart_matcher(owner)
    if memo is None:
        threads = build_threads(read.messages, counterpart)
        outcome = evaluate(plan.name, threads, owner, policy, as_of, plan.reply_window)
    else:
        threads = memo.threads.update(read.messages, counterpart, owner)
        outcome = memo.verdicts.evaluate(
            plan.name, threads, owner, policy, as_of, plan.reply_window
        )
    return threads, outcome


def scan_account(
    plan: AccountPlan,
    source: MailSource,
    as_of: datetime,
    report: Report,
    progress: Progress | None = None,
    memo: ScanMemo | None = None,
) -> None:
    """Scan one account into `report`; the source is closed by the caller. With `memo`,
    only the threads the changes since the last scan touch are rebuilt and judged."""
    read = read_account(plan, source, as_of, progress)
    messages, owner, policy = read.messages, read.owner, read.policy
    threads, outcome = _judged(plan, read, as_of, memo)
    bodies = Bodies(source)
    findings = [*outcome.overdue, *outcome.waiting]
    settled, owed = (memo.settled, memo.owed) if memo is not None else (None, None)
    bodies.ahead(settled.unsettled(findings, threads, owner, policy) if settled else findings)
    try:  # the bodies asked are read by refine; meanwhile:
        after = plan.followup_after if read.covered else timedelta(0)  # 0: nobody's awaited
        late, soon = awaiting(plan.name, threads, owner, policy, as_of, after, owed)
        judge = (owner, policy, as_of, plan.reply_window)
        refine(plan.name, outcome, threads, judge, bodies.read, settled)
    finally:
        bodies.settle()
    stats = outcome.stats
    if not read.covered:
        outcome.overdue, outcome.waiting, outcome.invitations = [], [], []
        stats.pending += stats.overdue
        stats.overdue = 0
    copied = stats.reply.copy()  # a memo's stats change at the next poll
    summary = (plan.name, (*read.watched,), (*read.sent,), len(messages), len(threads))
    report.accounts.append(AccountSummary(*summary, plan.window, copied, bool(policy.rules)))
    report.overdue.extend(outcome.overdue)
    report.waiting.extend(outcome.waiting)
    report.invitations.extend(outcome.invitations)
    report.awaiting.extend(late)
    report.awaiting_soon.extend(soon)
    report.stats.add(stats)
    report.errors.extend(read.errors)


def _account_error(account: str, exc: InboxwatchError) -> ReportError:
    wait = exc.retry_after if isinstance(exc, ServerError) else 0.0
    return ReportError(account, exc.kind, str(exc), exc.exit_code, retry_after=wait)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the length of a scan.

    A scan builds hundreds of thousands of long-lived objects (messages, threads,
    findings) and no reference cycles of its own, yet every few thousand allocations
    the collector walks the young objects and, as the heap keeps growing, the whole
    heap again: ~0.7 s of a 100,000-message audit (bench/README.md). Reference counting
    still frees everything as usual.

    Afterwards the scan's objects join the oldest generation without a walk (freeze +
    unfreeze), as if they had survived a few collections; left young, the first
    allocation after the scan (a running service's next poll) would pay a ~0.2 s walk.
    Whatever cycle a library made meanwhile is found by the next full collection.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.freeze()
            gc.unfreeze()
            gc.enable()


def run_scan(
    jobs: Sequence[tuple[AccountPlan, SourceFactory]],
    as_of: datetime,
    generated_at: datetime,
    progress: Progress | None = None,
    memos: dict[str, ScanMemo] | None = None,
    parallel: int = 1,
    gate: Gate | None = None,
) -> Report:
    """Scan every account; a failing account becomes an error, the others go on.
    `memos` (by account) lets a running service redo only what changed. `parallel`
    accounts are read at once, each inside its `gate` (by account name: the per-server
    connection cap, imap.slots). The report is the same in any case, in the jobs' order."""
    windows = {None if plan.policy.rules else plan.window for plan, _ in jobs}
    report = Report(generated_at, as_of, windows.pop() if len(windows) == 1 else None)

    def one(job: tuple[AccountPlan, SourceFactory]) -> Report:
        part = Report(generated_at, as_of)
        with gate(job[0].name) if gate is not None else contextlib.nullcontext():
            _scan_one(*job, as_of, part, progress, memos)
        return part

    with collector_paused():
        parts = side_by_side(parallel, one, jobs)
    return _merged(report, parts)


def joined(parts: Sequence[Report], generated_at: datetime, as_of: datetime) -> Report:
    """One report of several accounts' own (each replica's, for a team's digest)."""
    windows = {None if a.ruled else a.window for part in parts for a in part.accounts}
    report = Report(generated_at, as_of, windows.pop() if len(windows) == 1 else None)
    return _merged(report, parts)


def _merged(report: Report, parts: Sequence[Report]) -> Report:
    for part in parts:
        _merge(report, part)
    if len(parts) > 1:  # each account's findings come sorted; merge them
        lists = (report.overdue, report.waiting, report.invitations, report.awaiting)
        for items in (*lists, report.awaiting_soon):
            items.sort(key=by_wait)
    return report


def _merge(report: Report, part: Report) -> None:
    report.accounts.extend(part.accounts)
    report.overdue.extend(part.overdue)
    report.waiting.extend(part.waiting)
    report.invitations.extend(part.invitations)
    report.awaiting.extend(part.awaiting)
    report.awaiting_soon.extend(part.awaiting_soon)
    report.stats.add(part.stats)
    report.errors.extend(part.errors)


def _scan_one(
    plan: AccountPlan,
    factory: SourceFactory,
    as_of: datetime,
    report: Report,
    progress: Progress | None,
    memos: dict[str, ScanMemo] | None,
) -> None:
    try:
        source = factory()
    except InboxwatchError as exc:
        report.errors.append(_account_error(plan.name, exc))
        return
    try:
        memo = None if memos is None else memos.setdefault(plan.name, ScanMemo())
        scan_account(plan, source, as_of, report, progress, memo)
    except InboxwatchError as exc:
        report.errors.append(_account_error(plan.name, exc))
    finally:
        source.close()
