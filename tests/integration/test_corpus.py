"""Corpus tests over ../shared/corpus (or $INBOXWATCH_CORPUS): real mail from other projects.

Read in place, never copied. Figures are printed (`pytest -s` or the -ra summary).
"""

from __future__ import annotations

import gzip
import json
import mailbox
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from inboxwatch.core.model import MessageMeta, ParseFailure
from inboxwatch.core.parse import parse_headers
from inboxwatch.core.rules import Owner, Policy, exclusion
from inboxwatch.core.subjects import base_subject
from inboxwatch.core.threads import build_threads
from inboxwatch.local.source import LocalSource, _header_block
from tests.conftest import corpus_dir
from tests.factory import msg

pytestmark = pytest.mark.corpus
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
WHEN = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def corpus() -> Path:
    return corpus_dir()


# --- threading: Dovecot imaptest THREAD=REFERENCES cases -------------------------------


def _thread_groups(answer: str) -> list[set[int]]:
    """`(1 (2 4)(3))(5)` -> [{1, 2, 3, 4}, {5}]: the top-level threads of a THREAD answer."""
    groups: list[set[int]] = []
    depth = 0
    for token in re.findall(r"\(|\)|\d+", answer):
        if token == "(":
            if depth == 0:
                groups.append(set())
            depth += 1
        elif token == ")":
            depth -= 1
        else:
            groups[-1].add(int(token))
    return groups


def _merge_shared_ids(groups: list[set[int]], ids: dict[int, str | None]) -> list[set[int]]:
    merged: list[set[int]] = []
    for group in groups:
        names = {ids[n] for n in group} - {None}
        combined = set(group)
        for other in [g for g in merged if names & {ids[n] for n in g}]:
            merged.remove(other)
            combined |= other
        merged.append(combined)
    return merged


def _imaptest_checks(script: str, total: int) -> list[tuple[list[int], str]]:
    """Replay a script's appends/expunges: (mbox indexes present, expected answer) pairs."""
    present = list(range(total)) if "messages: all" in script else []
    pending: set[int] = set()
    checks = []
    appended = 0
    for line in script.splitlines():
        if line.startswith("ok append"):
            present.append(appended)
            appended += 1
        elif m := re.match(r"ok store ([\d,]+) \+flags \\deleted", line):
            pending = {int(n) for n in m.group(1).split(",")}
        elif line.startswith("ok expunge"):
            present = [idx for seq, idx in enumerate(present, 1) if seq not in pending]
        elif line.lower().startswith("* thread"):
            checks.append((list(present), line.split(" ", 2)[2]))
    return checks


def _imaptest_cases(corpus: Path) -> list[Path]:
    return sorted(
        p
        for p in (corpus / "imaptest-thread").glob("thread*")
        if p.suffix == "" and "orderedsubject" not in p.name
    )


def test_imaptest_thread_cases_agree(corpus):
    compared = exact = 0
    for script in _imaptest_cases(corpus):
        source = LocalSource([script.with_suffix(".mbox")])
        messages = source.fetch_since(script.name, EPOCH).messages
        source.close()
        for present, answer in _imaptest_checks(script.read_text(), len(messages)):
            chosen = [messages[i] for i in present]
            seq = {m.uid: n for n, m in enumerate(chosen, 1)}
            ours = [{seq[m.uid] for m in t.messages} for t in build_threads(chosen)]
            expected = _thread_groups(answer)
            # Copies sharing a Message-ID are one message to inboxwatch (Gmail labels,
            # Bcc-to-self); RFC 5256 keeps them apart, so merge those expected threads.
            ids = {seq[m.uid]: m.message_id for m in chosen}
            expected = _merge_shared_ids(expected, ids)
            # Every message exactly once; we never join what Dovecot keeps apart. Dovecot
            # also merges threads by subject, which inboxwatch does only with the guarded fallback.
            assert sorted(n for g in ours for n in g) == list(range(1, len(chosen) + 1))
            assert all(any(g <= e for e in expected) for g in ours), (script.name, answer, ours)
            compared += 1
            exact += sorted(map(sorted, ours)) == sorted(map(sorted, expected))
    print(f"\nimaptest THREAD: {compared} answers compared, {exact} identical partitions")
    assert compared >= 10 and exact >= compared - 2


def test_orderedsubject_cases_lose_no_message(corpus):
    for mbox in (corpus / "imaptest-thread").glob("thread-orderedsubject*.mbox"):
        source = LocalSource([mbox])
        messages = source.fetch_since(mbox.stem, EPOCH).messages
        threads = build_threads(messages)
        assert sorted(m.uid for t in threads for m in t.messages) == sorted(m.uid for m in messages)


# --- threading: jwz's TestThreader vectors ----------------------------------------------


def _expected_jwz_groups(tree: str) -> list[Counter[str]]:
    groups: list[Counter[str]] = []
    for line in tree.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            groups.append(Counter())
        if line.strip() != "dummy":
            groups[-1][line.strip()] += 1
    return groups


def test_jwz_vectors(corpus):
    data = json.loads((corpus / "jwz-vectors" / "mailkit-jwz-vectors.json").read_text())
    for case in data["base_subject_cases"]:
        assert base_subject(case["input"]) == case["base"]
    vectors = data["references_algorithm"]
    batch = [
        msg(
            m["message_id"].strip("<>") or None,
            refs=tuple(r.strip("<>") for r in m["references"]),
            subject=m["subject"],
            hours=n,
        )
        for n, m in enumerate(vectors["messages"])
    ]
    threads = build_threads(batch)
    assert sorted(m.uid for t in threads for m in t.messages) == sorted(m.uid for m in batch)
    expected = _expected_jwz_groups(vectors["expected_tree_text"])
    looped = {m["subject"] for m in vectors["messages"]} - {s for g in expected for s in g}
    for thread in threads:
        subjects = Counter(m.subject for m in thread.messages if m.subject not in looped)
        if subjects:
            assert any(not subjects - e for e in expected), subjects
    print(
        f"\njwz vectors: {len(batch)} messages in {len(threads)} threads "
        f"({len(looped)} loop messages kept, which MailKit drops)"
    )


# --- threading: a month of a real mailing list ------------------------------------------


def _fedora(corpus: Path, tmp_path: Path) -> list[MessageMeta]:
    path = tmp_path / "fedora.mbox"  # decompressed into the test's temp dir, not the project
    path.write_bytes(
        gzip.decompress((corpus / "fedora-devel-2010-01" / "2010-January.txt.gz").read_bytes())
    )
    source = LocalSource([path])
    messages = source.fetch_since("fedora", EPOCH).messages
    source.close()
    return messages


def test_fedora_month_threads_follow_header_links_and_the_archive(corpus, tmp_path):
    messages = _fedora(corpus, tmp_path)
    assert len(messages) == 292
    thread_of = {m.uid: n for n, t in enumerate(build_threads(messages)) for m in t.messages}
    by_id = {m.message_id: m for m in messages if m.message_id}
    header_links = [
        (by_id[r].uid, m.uid)
        for m in messages
        for r in (m.in_reply_to or m.references[-1:])
        if r in by_id
    ]
    assert header_links and all(thread_of[a] == thread_of[b] for a, b in header_links)
    html = gzip.decompress(
        (corpus / "fedora-devel-2010-01" / "2010-January_thread.html.gz").read_bytes()
    ).decode("latin-1")
    archive_links = _archive_links(html)
    agree = sum(thread_of[p + 1] == thread_of[c + 1] for p, c in archive_links)
    print(
        f"\nfedora-devel: {len(header_links)} header links all joined; archive index "
        f"agrees on {agree}/{len(archive_links)} parent-child links"
    )
    assert agree / len(archive_links) >= 0.97


def _archive_links(html: str) -> list[tuple[int, int]]:
    """Parent->child message numbers from MHonArc's nested <ul> thread index."""
    links, stack, last = [], [], None
    for match in re.finditer(r'<ul>|</ul>|name="(\d+)"', html.split("<HR>", 1)[1]):
        token = match.group(0)
        if token == "<ul>":
            stack.append(last)
        elif token == "</ul>":
            if stack:
                stack.pop()
        else:
            number = int(match.group(1))
            if stack and stack[-1] is not None:
                links.append((stack[-1], number))
            last = number
    return links


# --- parsing: mikel-mail's broken messages ----------------------------------------------


def test_every_mikel_mail_message_parses_or_is_counted(corpus):
    files = sorted((corpus / "mikel-mail").rglob("*.eml"))
    assert len(files) >= 100
    results = [
        parse_headers(_header_block(f.read_bytes()), "corpus", n, WHEN) for n, f in enumerate(files)
    ]
    failures = [r for r in results if isinstance(r, ParseFailure)]
    understood = [r for r in results if isinstance(r, MessageMeta)]
    print(f"\nmikel-mail: {len(understood)} understood, {len(failures)} counted as unparsable")
    assert len(understood) + len(failures) == len(files)
    assert all("\n" not in m.subject and "\r" not in m.subject for m in understood)


# --- rules: sisimai's bounces and auto-replies ------------------------------------------


def _sisimai(corpus: Path, sub: str) -> list[tuple[str, MessageMeta]]:
    out = []
    for n, path in enumerate(sorted((corpus / "sisimai" / "maildir" / sub).iterdir())):
        meta = parse_headers(_header_block(path.read_bytes()), sub, n, WHEN)
        assert isinstance(meta, MessageMeta), path.name
        out.append((path.name, meta))
    return out


def test_sisimai_bounces_and_auto_replies_are_automated(corpus):
    owner, policy = Owner.of(["owner@inboxwatch.invalid"]), Policy()
    results = {name: exclusion(meta, owner, policy) for name, meta in _sisimai(corpus, "bsd")}
    caught = [name for name, found in results.items() if found is not None]
    missed = sorted(set(results) - set(caught))
    by_rule = Counter(found.rule for found in results.values() if found is not None)
    share = len(caught) / len(results)
    print(
        f"\nsisimai bsd: {len(caught)}/{len(results)} = {share:.1%} classified automated; "
        f"by rule {dict(by_rule.most_common())}; missed: {missed}"
    )
    assert len(results) == 623
    assert share >= 0.977


def test_sisimai_lookalikes_are_not_automated(corpus):
    owner, policy = Owner.of(["owner@inboxwatch.invalid"]), Policy()
    results = dict(_sisimai(corpus, "not"))
    assert len(results) == 3
    # Two are person-to-person mail (one forwards a message as an attachment).
    for name in ("is-not-bounce-01.eml", "is-not-bounce-02.eml"):
        assert exclusion(results[name], owner, policy) is None, name
    # The third is "not a bounce" to sisimai's decoder, but it is a postmaster's
    # mailbox-full notice with Auto-Submitted: auto-replied and Return-Path: <>:
    # the contract's Auto-Submitted rule says it expects no reply, and it is right.
    found = exclusion(results["rb-issue-368-bug.eml"], owner, policy)
    assert found is not None and found.rule == "auto_submitted"


def test_corpus_messages_read_by_mailbox_module_match(corpus):
    # The mbox reader and the header splitter see the same message count as mailbox does.
    mbox = corpus / "imaptest-thread" / "thread.mbox"
    assert len(mailbox.mbox(mbox)) == len(LocalSource([mbox]).fetch_since("thread", EPOCH).messages)
