"""The last poll's report, kept in the state file for `run --once` from cron.

A running service carries its last report forward when no folder changed and no digest
is due (core.carried.advance); a fresh process has none, and re-reading and re-threading a
100,000-message cache costs it ~2 s each run. So a clean poll's report is stored with a
fingerprint of what it depends on (the account settings and this version), and read back
only when the fingerprint matches. The state file is written only by inboxwatch (0600),
but what is read back is still checked: anything unexpected means "no report", and the
poll reads the cache as before.

A kept report is a head (`head`: its figures) and rows (`changes`: its findings and
conversations, store/keptrows.py), put together again by `filled`. `encode` and `decode`
also carry a replica's part of a report whole (service/replicas.py).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import orjson

from inboxwatch import __version__
from inboxwatch.config import Settings
from inboxwatch.core.model import (
    FINDING_LISTS,
    AccountSummary,
    Address,
    Conversation,
    Finding,
    Reason,
    ReplyStandard,
    Report,
    ReportError,
    Stats,
    by_wait,
)
from inboxwatch.core.ports import KeptChange, KeptFinding
from inboxwatch.store.rows import micros

# 2: findings carry their reply standard (due, priority, rule, ...). 3: a first line of
# the accounts' folders, so a run that finds mail changed decodes nothing else. 4: the
# folders apart (`encode_folders`), the body as UTF-8 bytes (schema 13). 5: the body is a
# head (`head`): the findings and conversations are rows (store/keptrows.py).
FORMAT = 5
LISTS = FINDING_LISTS  # a finding row's kind: its index


def fingerprint(settings: Settings) -> str:
    """What a report depends on: every account setting but its secrets, and the version."""
    accounts = [
        a.model_dump(mode="json", exclude={"password", "password_file"}) for a in settings.accounts
    ]
    text = json.dumps([FORMAT, __version__, accounts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def folders_of(report: Report) -> dict[str, tuple[str, ...]]:
    """Each account's folders, watched and sent: what a poll asks the server about."""
    return {a.name: (*a.folders, *a.sent_folders) for a in report.accounts}


def encode_folders(report: Report) -> str:
    """`folders_of` as kept beside the report: a run that finds mail changed reads nothing
    else of it (decoding a big mailbox's whole report costs ~0.3 s and ~100 MB)."""
    return orjson.dumps(folders_of(report)).decode()


def folders(text: str) -> dict[str, tuple[str, ...]]:
    """What `encode_folders` wrote; raises ValueError, AttributeError or TypeError on
    anything else."""
    head: dict[str, list[str]] = json.loads(text)
    return {str(name): tuple(map(str, names)) for name, names in head.items()}


def encode(report: Report, each: bool = True) -> bytes:
    """The report as UTF-8 JSON bytes (as a `str`, two or four bytes a character once a
    subject holds one beyond Latin-1: a 100,000-message report's 22 MB took 44); without
    `each`, the accounts' conversations are left out (`head`)."""
    # orjson: 31,000 findings' lists encode in a fraction of json's time (bench/README.md),
    # their datetimes as isoformat() writes them (RFC 3339). Findings and conversations
    # are made lists by `_row` as orjson reaches them, not all before it starts.
    stats = report.stats
    return orjson.dumps(
        {
            "generated_at": report.generated_at,
            "as_of": report.as_of,
            "window": _seconds(report.window),
            "accounts": [
                [
                    *(a.name, a.folders, a.sent_folders, a.messages, a.threads),
                    *(_seconds(a.window), _reply_row(a.reply, each), a.ruled),
                ]
                for a in report.accounts
            ],
            "overdue": report.overdue,
            "waiting": report.waiting,
            "invitations": report.invitations,
            "awaiting": report.awaiting,
            "awaiting_soon": report.awaiting_soon,
            "stats": [stats.threads, stats.answered, stats.overdue, stats.pending],
            "excluded": stats.excluded,
            # The report's conversations are its accounts' (decode joins them again).
            "reply": _reply_row(stats.reply, each=False),
            "errors": [
                [e.account, e.kind, e.message, e.exit_code, e.folder, e.uid, e.retry_after]
                for e in report.errors
            ],
        },
        default=_row,
    )


def _row(value: object) -> list[Any]:
    """A finding or a conversation as its list (orjson's `default`: it writes neither
    NamedTuple as it is)."""
    if isinstance(value, Finding):
        return _finding(value)
    if isinstance(value, Conversation):
        return [*value]  # since, due, replied, answered, rule, priority, as `_reply` reads
    raise TypeError(f"{type(value).__name__} is not kept in a report")


def decode(body: bytes | str) -> Report:
    """The report `encode` wrote (a replica's part: as text); raises ValueError, KeyError or
    TypeError on anything else."""
    if isinstance(body, str):
        # A part kept by a replica of an earlier version (FORMAT 3) begins with its folders'
        # line; JSON escapes newlines, so the body follows the first if there is one.
        body = body[body.find("\n") + 1 :]
    # orjson from the bytes: 0.10 s for a 100,000-message report, where json needed them
    # decoded to a str first (0.13-0.16 s, and a 44 MB copy).
    data: dict[str, Any] = orjson.loads(body)
    threads, answered, overdue, pending = map(int, data["stats"])
    accounts = [_summary(row) for row in data["accounts"]]
    reply = _reply(data["reply"])
    reply.each = [c for a in accounts for c in a.reply.each]
    excluded = {str(k): int(v) for k, v in data["excluded"].items()}
    stats = Stats(threads, answered, overdue, pending, excluded, reply)
    return Report(
        generated_at=datetime.fromisoformat(data["generated_at"]),
        as_of=datetime.fromisoformat(data["as_of"]),
        window=_delta(data["window"]),
        accounts=accounts,
        overdue=[_found(f) for f in data["overdue"]],
        waiting=[_found(f) for f in data["waiting"]],
        invitations=[_found(f) for f in data.get("invitations", [])],
        awaiting=[_found(f) for f in data.get("awaiting", [])],
        awaiting_soon=[_found(f) for f in data.get("awaiting_soon", [])],
        stats=stats,
        errors=[ReportError(*e) for e in data["errors"]],
    )


def head(report: Report) -> bytes:
    """The kept report's head: `encode` without findings or conversations (`changes`
    makes them rows; `filled` puts them back)."""
    return encode(report.listing({key: [] for key in LISTS}), each=False)


def changes(report: Report) -> list[KeptChange]:
    """Each account's findings and conversations as rows, for a report kept whole."""
    lists: dict[str, dict[str, list[Finding]]] = {a.name: {} for a in report.accounts}
    for key in LISTS:
        for f in getattr(report, key):
            lists.setdefault(f.account, {}).setdefault(key, []).append(f)
    each = {a.name: a.reply.each for a in report.accounts}
    return [change(name, (), found, (), each.get(name, [])) for name, found in lists.items()]


def change(
    account: str,
    threads: Collection[str],
    lists: Mapping[str, Sequence[Finding]],
    gone: Sequence[Conversation],
    come: Sequence[Conversation],
) -> KeptChange:
    """The account's rows changed: the findings of `threads` dropped, those of `lists`
    added, conversations `gone` taken out and `come` put in."""
    counted: Counter[str] = Counter(_text(c) for c in come)
    counted.subtract(_text(c) for c in gone)
    # A generator: each row is made as it is written. orjson's bytes hold ~3.5 KB each
    # however short (its buffer, shrunk by realloc, is not given back): as a list, 31,000
    # findings' rows (18 MB) held +104 MB.
    rows = (_kept(LISTS.index(key), f) for key, found in lists.items() for f in found)
    return KeptChange(account, threads, rows, {row: n for row, n in counted.items() if n})


def _text(c: Conversation) -> str:
    """A conversation's row: text, so that 30,000 of them held at once are their size
    (orjson's bytes would be ~3.5 KB each: `change`)."""
    return orjson.dumps([*c]).decode()


def _kept(kind: int, f: Finding) -> KeptFinding:
    due = micros(f.due or f.waiting_since)  # Finding.overdue_at
    ids = "\n".join(f.message_ids)
    row = orjson.dumps(_finding(f))
    return KeptFinding(f.account, f.thread_id, kind, micros(f.waiting_since), due, ids, row)


def filled(
    head: Report,
    findings: Iterable[tuple[int, bytes]],
    conversations: Iterable[tuple[str, str, int]],
) -> Report:
    """The report `head` and its rows make (its findings in each list's order, by_wait);
    raises ValueError, KeyError or TypeError on anything unexpected."""
    lists: dict[str, list[Finding]] = {key: [] for key in LISTS}
    for kind, row in findings:
        lists[LISTS[kind]].append(_found(orjson.loads(row)))
    for found in lists.values():
        found.sort(key=by_wait)
    each: dict[str, list[Conversation]] = {}
    for account, text, n in conversations:
        each.setdefault(account, []).extend([_conversation(orjson.loads(text))] * n)
    accounts = [replace(a, reply=_with(a.reply, each.get(a.name, []))) for a in head.accounts]
    every = [c for a in accounts for c in a.reply.each]
    stats = replace(head.stats, reply=_with(head.stats.reply, every))
    return replace(head, accounts=accounts, stats=stats).listing(lists)


def found(kind_row: tuple[int, bytes]) -> tuple[str, Finding]:
    """A finding's row as its list and the finding."""
    kind, row = kind_row
    return LISTS[kind], _found(orjson.loads(row))


def _with(reply: ReplyStandard, each: list[Conversation]) -> ReplyStandard:
    return replace(reply, delays=[*reply.delays], each=each)


def _reply_row(reply: ReplyStandard, each: bool = True) -> list[Any]:
    """Its figures, and each conversation (a big mailbox has tens of thousands, and
    `run --once` reads them back at every poll: ISO times, which decode fastest)."""
    return [
        *(reply.conversations, reply.answered, reply.judged, reply.within_window),
        [float(d) for d in reply.delays],
        reply.each if each else [],  # each by `_row`
    ]


def _reply(row: list[Any]) -> ReplyStandard:
    conversations, replied, judged, within, delays, each = row

    return ReplyStandard(
        *(int(conversations), int(replied), int(judged), int(within)),
        [float(d) for d in delays],
        [_conversation(row) for row in each],
    )


def _conversation(row: list[Any]) -> Conversation:
    since, due, replied, answered, rule, priority = row
    at = datetime.fromisoformat
    when = at(replied) if replied is not None else None
    return Conversation(at(since), at(due), when, bool(answered), str(rule), str(priority))


def _summary(row: list[Any]) -> AccountSummary:
    """An account's summary; one kept before its reply standard was (7th) has none."""
    name, folders, sent, messages, threads, window = row[:6]
    reply = _reply(row[6]) if len(row) > 6 else ReplyStandard()
    ruled = bool(row[7]) if len(row) > 7 else False
    return AccountSummary(
        *(name, tuple(folders), tuple(sent), messages, threads),
        *(timedelta(seconds=window), reply, ruled),
    )


def _finding(f: Finding) -> list[Any]:
    return [
        f.account,
        f.thread_id,
        f.subject,
        [f.correspondent.name, f.correspondent.address],
        f.waiting_since,
        f.message_ids,
        f.folder,
        f.uids,
        f.messages_in_thread,
        f.last_reply,
        f.reason,
        [[r.kind, r.message_id, r.at, r.detail] for r in f.reasons],
        list(f.event) if f.event else None,
        [
            *(f.due, f.priority, f.rule, f.remind),
            *(_seconds(f.business_waiting), f.digests_seen, f.escalated),
        ],
    ]


def _found(row: list[Any]) -> Finding:
    account, thread_id, subject, (name, address), since, ids, folder, uids, count, last, why = row[
        :11
    ]
    reasons = tuple(
        Reason(str(k), str(m), datetime.fromisoformat(at) if at else None, str(d))
        for k, m, at, d in (row[11] if len(row) > 11 else ())  # none in an older kept report
    )
    return Finding(
        str(account),
        str(thread_id),
        str(subject),
        Address(str(name), str(address)),
        datetime.fromisoformat(since),
        tuple(map(str, ids)),
        str(folder),
        tuple(map(int, uids)),
        int(count),
        datetime.fromisoformat(last) if last else None,
        str(why),
        reasons,
        (str(row[12][0]), str(row[12][1])) if len(row) > 12 and row[12] else None,
        *_standard(row[13] if len(row) > 13 else None),  # none in an older kept report
    )


def _standard(row: list[Any] | None) -> tuple[Any, ...]:
    """A finding's reply standard: due, priority, rule, remind, business wait, digests seen
    and escalated (Finding's fields in that order)."""
    if not row:
        return ()
    due, priority, rule, remind, business, seen, escalated = row
    when = datetime.fromisoformat(due) if due else None
    return (when, str(priority), str(rule), str(remind), _delta(business), int(seen), escalated)


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def _delta(seconds: float | None) -> timedelta | None:
    return None if seconds is None else timedelta(seconds=seconds)
