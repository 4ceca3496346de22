"""Threading: JWZ linking, loops, duplicates, the guarded subject fallback; properties."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from inboxwatch.core.model import Address, MessageMeta
from inboxwatch.core.rules import Owner
from inboxwatch.core.scan import counterpart_matcher
from inboxwatch.core.subjects import _SPACES, Bases, Endings, base_subject, strip_subject
from inboxwatch.core.threads import build_threads
from tests.factory import msg

ME = "me@mydomain.example"


def groups(threads) -> set[frozenset[str]]:
    return {frozenset(m.message_id or str(m.uid) for m in t.messages) for t in threads}


def test_replies_and_missing_parents_join():
    a, b = msg("a"), msg("b", refs=("a",), hours=1)
    c = msg("c", refs=("a", "missing"), hours=2)  # parent never seen
    d = msg("d", irt=("b",), hours=3)  # In-Reply-To only
    other = msg("z")
    threads = build_threads([d, c, b, a, other])
    assert groups(threads) == {frozenset({"<a>", "<b>", "<c>", "<d>"}), frozenset({"<z>"})}
    assert next(t for t in threads if len(t.messages) == 4).thread_id == "<a>"


def test_loops_self_references_and_duplicates_terminate():
    loop = [
        msg("l1", refs=("l2", "l3")),
        msg("l2", refs=("l3", "l1")),
        msg("l3", refs=("l1", "l2")),
    ]
    selfref = msg("s", refs=("s",))
    dup1, dup2 = msg("d", folder="INBOX"), msg("d", folder="Sent", hours=1)
    threads = build_threads([*loop, selfref, dup1, dup2])
    assert sum(len(t.messages) for t in threads) == 6
    assert frozenset({"<l1>", "<l2>", "<l3>"}) in groups(threads)
    assert any(len(t.messages) == 2 and t.thread_id == "<d>" for t in threads)


def test_own_references_override_a_guessed_parent_rfc5256():
    # imaptest "thread": b links a->c, but c's own References say b: c becomes a root.
    a, b, c = msg("a"), msg("b", refs=("a", "c"), hours=1), msg("c", refs=("b",), hours=2)
    assert groups(build_threads([a, b, c])) == {frozenset({"<a>"}), frozenset({"<b>", "<c>"})}


def test_base_subject():
    assert base_subject("Re: AW: Fwd:  Invoice   Q") == "invoice q"
    assert base_subject("RE[2]: SV: x (fwd)") == "x"
    assert base_subject("Re:") == ""


def test_a_builds_base_subjects_are_kept_for_its_indexes():
    """build_threads hands back, in `bases`, what it took: the service's indexes
    (core.incremental) read the lone messages' base subjects from it."""
    bases = Bases()
    owner = Owner.of(["me@x.example"])
    lone: list[MessageMeta] = []
    mine = msg("a@x", sender="me@x.example", to=("bob@y.example",), subject="Quote")
    theirs = msg("b@y", sender="bob@y.example", subject="RE: Quote", hours=1)
    build_threads([mine, theirs], counterpart_matcher(owner), lone, bases)
    assert bases == {"Quote": "quote", "RE: Quote": "quote"}
    assert bases["Fwd: [list] Other"] == "other"  # a subject not seen yet is taken and kept
    assert "Fwd: [list] Other" in bases


SUBJECT_WORDS = ["Re", "RE", "re", "AW", "Fwd", "R", "Sv", "Ré", "ſv", "x", "Invoice", "(fwd)"]
SUBJECT_MARKS = [": ", ":", "：", " ", "  ", "[2]", "[list]", "[fwd: ", "]", ")", "\t", "\u00a0"]
subject_parts = st.sampled_from([*SUBJECT_WORDS, *SUBJECT_MARKS])


@settings(max_examples=500, deadline=None)
@given(st.lists(subject_parts, max_size=8).map("".join))
def test_base_subject_shortcuts_agree_with_the_rfc_5256_steps(subject):
    assert base_subject(subject) == strip_subject(_SPACES.sub(" ", subject).strip())


@settings(max_examples=500, deadline=None)
@given(st.lists(subject_parts, max_size=8).map("".join), st.sets(st.sampled_from(SUBJECT_WORDS)))
def test_a_subject_ruled_out_by_its_ending_has_no_wanted_base_subject(subject, others):
    # The screen may only say "maybe" too often, never "no" to a base subject wanted.
    wanted = {w.casefold() for w in others}
    assert Endings({*wanted, base_subject(subject)}).may_end(subject)
    if not Endings(wanted).may_end(subject):
        assert base_subject(subject) not in wanted


def test_the_ending_screen_rules_out_other_subjects():
    endings = Endings({"invoice 7", "quote"})
    assert endings.may_end("Re: [acme] Invoice 7") and endings.may_end("QUOTE")
    assert not endings.may_end("Re: Invoice 8") and not endings.may_end("Requote")
    # Trailers and wrappers RFC 5256 takes off the end: those are always asked.
    assert Endings({"x"}).may_end("[Fwd: x]") and Endings({"x"}).may_end("x (fwd)")


def test_subject_fallback_is_guarded_by_the_counterpart():
    match = counterpart_matcher(Owner.of([ME]))
    question = msg("q", subject="Quote", sender="anna@client.example")
    reply = msg("r", subject="Re: quote", sender=ME, to=("anna@client.example",), hours=2)
    stranger = msg("s", subject="Re: Quote", sender=ME, to=("bob@else.example",), hours=3)
    linked = msg("l", subject="Quote", sender="carl@x.example", refs=("zz",), hours=4)
    threads = build_threads([question, reply, stranger, linked], match)
    assert groups(threads) == {frozenset({"<q>", "<r>"}), frozenset({"<s>"}), frozenset({"<l>"})}
    assert threads[0].thread_id == "<q>"  # the earlier message's thread names the merged one
    assert build_threads([question, reply]) != build_threads([question, reply], match)


def test_an_unlinked_reply_joins_the_owners_thread_even_once_others_answered_it():
    """Issue 18, item 7: Anna's reply lost its headers and Carl answered it (linked); the
    owner then answered in their own thread. One thread: Anna waits for nobody."""
    match = counterpart_matcher(Owner.of([ME]))
    plan = msg("p", subject="Plan", sender=ME, to=("anna@client.example",))
    anna = msg("a", subject="Re: Plan", sender="anna@client.example", hours=2)
    carl = msg("c", subject="Re: Plan", sender="carl@x.example", irt=("a",), hours=3)
    answer = msg(
        "o", subject="Re: Plan", sender=ME, irt=("p",), to=("anna@client.example",), hours=4
    )
    threads = build_threads([plan, anna, carl, answer], match)
    assert groups(threads) == {frozenset({"<p>", "<a>", "<c>", "<o>"})}


def test_a_lists_reply_to_does_not_join_members_posts_to_the_owners_list_thread():
    """Issue 18, item 7: a list's Reply-To is the list, not a person."""
    match = counterpart_matcher(Owner.of([ME]))
    listed = {"list_headers": True, "list_id": True}
    mine = msg("m", subject="Release", sender=ME, to=("dev@lists.example",))
    posts = [
        msg(
            mid,
            subject="Re: Release",
            sender=who,
            hours=n + 1,
            **listed,
            reply_to=(Address("", "dev@lists.example"),),
        )
        for n, (mid, who) in enumerate([("a", "anna@c.example"), ("b", "bo@x.example")])
    ]
    threads = build_threads([mine, *posts], match)
    assert groups(threads) == {frozenset({"<m>"}), frozenset({"<a>"}), frozenset({"<b>"})}
    personal = posts[0]._replace(list_headers=False, list_id=False)  # a person's Reply-To
    joined = build_threads([mine, personal], match)
    assert groups(joined) == {frozenset({"<m>", "<a>"})}


ids = st.sampled_from([f"m{i}" for i in range(12)])
messages = st.lists(
    st.tuples(
        st.one_of(st.none(), ids),
        st.lists(ids, max_size=5),
        st.lists(ids, max_size=1),
        st.integers(0, 100),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(messages, st.randoms(use_true_random=False))
def test_every_message_in_exactly_one_thread_whatever_the_order(spec, rnd: random.Random):
    batch = [msg(mid, refs=tuple(refs), irt=tuple(irt), hours=h) for mid, refs, irt, h in spec]
    threads = build_threads(batch)
    uids = [m.uid for t in threads for m in t.messages]
    assert sorted(uids) == sorted(m.uid for m in batch)
    shuffled = batch[:]
    rnd.shuffle(shuffled)
    assert groups(build_threads(shuffled)) == groups(threads)


def test_the_providers_conversation_joins_messages_whose_headers_do_not_link():
    """Gmail's X-GM-THRID: a reply whose client dropped References, another subject even."""
    first = msg("a", hours=0, thread_hint="1266894439832287888")
    reply = msg(
        "b", hours=1, subject="Re: Hello (sent from my phone)", thread_hint=first.thread_hint
    )
    other = msg("c", hours=2, thread_hint="1266894439832287999")
    threads = build_threads([first, reply, other])
    assert [[m.message_id for m in t.messages] for t in threads] == [["<a>", "<b>"], ["<c>"]]
    assert threads[0].thread_id == "<a>"  # the earlier thread's root names the joined one


def test_label_copies_without_a_message_id_share_one_place_by_the_providers_id():
    """Gmail's X-GM-MSGID: the same message read from INBOX and from a label's folder."""
    inbox = msg(None, folder="INBOX", provider_id="1278455344230334865")
    label = inbox._replace(folder="Clients", uid=inbox.uid + 1000)
    apart = msg(None, folder="INBOX")
    threads = build_threads([inbox, label, apart])
    assert sorted(len(t.messages) for t in threads) == [1, 2]
    assert len({t.thread_id for t in threads}) == 2
