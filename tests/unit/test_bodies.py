"""core.bodies: the findings' bodies asked ahead, read once, and never left unread."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import pytest

from inboxwatch.core.bodies import Bodies
from inboxwatch.core.bodytext import Details
from inboxwatch.core.model import Address, Finding, MessageMeta
from inboxwatch.errors import ServerError
from tests.conftest import NOW

DETAILS = Details("Thanks!", False, "", "", "")


class Source:
    """Records each ask and each answer, in order; `fail` names the step that raises."""

    def __init__(self, fail: str = "") -> None:
        self.calls: list[tuple[str, str, tuple[int, ...]]] = []
        self.fail = fail

    def ask_details(self, folder: str, uids: Sequence[int]) -> Callable[[], dict[int, Details]]:
        self.calls.append(("ask", folder, tuple(uids)))
        if self.fail == "ask":
            raise ServerError("connection dropped")

        def answer() -> dict[int, Details]:
            self.calls.append(("answer", folder, tuple(uids)))
            if self.fail == "answer":
                raise ServerError("connection dropped")
            return {uid: DETAILS for uid in uids}

        return answer


def finding(folder: str, *uids: int) -> Finding:
    who = Address("Ann", "ann@x.example")
    return Finding("work", f"<{uids}>", "Hi", who, NOW, (), folder, uids, 1, None, "")


def msg(folder: str, uid: int) -> MessageMeta:
    return MessageMeta(folder, uid, f"<{folder}{uid}@x>", (), (), "Hi", None, NOW)


def test_the_findings_folder_is_asked_ahead_and_its_answer_read_before_anything_else() -> None:
    source = Source()
    bodies = Bodies(source)  # type: ignore[arg-type]
    bodies.ahead([finding("INBOX", 3, 1), finding("Support", 7), finding("INBOX", 5)])
    assert source.calls == [("ask", "INBOX", (1, 3, 5))]  # the folder holding most of them

    wanted = [msg("INBOX", 1), msg("Support", 7), msg("INBOX", 3), msg("INBOX", 5)]
    found = bodies.read(wanted)

    assert found == {(m.folder, m.uid): DETAILS for m in wanted}
    # The answer asked ahead first (nothing may be asked of the source before it), then
    # only what it did not cover: INBOX is not asked again.
    assert source.calls[1:] == [
        ("answer", "INBOX", (1, 3, 5)),
        ("ask", "Support", (7,)),
        ("answer", "Support", (7,)),
    ]
    bodies.settle()
    assert len(source.calls) == 4  # nothing left to read


def test_an_answer_asked_ahead_and_never_read_is_read_by_settle() -> None:
    """A scan that fails between asking and reading must not leave the session with an
    answer in flight (a running service keeps its session for the next poll)."""
    source = Source()
    bodies = Bodies(source)  # type: ignore[arg-type]
    bodies.ahead([finding("INBOX", 1)])
    bodies.settle()
    assert source.calls == [("ask", "INBOX", (1,)), ("answer", "INBOX", (1,))]
    bodies.settle()
    assert len(source.calls) == 2


def test_no_findings_asks_nothing() -> None:
    source = Source()
    bodies = Bodies(source)  # type: ignore[arg-type]
    bodies.ahead([])
    assert bodies.read([]) == {}
    bodies.settle()
    assert source.calls == []


@pytest.mark.parametrize("fail", ["ask", "answer"])
def test_a_failed_body_read_leaves_the_messages_to_their_headers(
    fail: str, caplog: pytest.LogCaptureFixture
) -> None:
    source = Source(fail)
    bodies = Bodies(source)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING):
        bodies.ahead([finding("INBOX", 1)])
        found = bodies.read([msg("INBOX", 1)])
    assert found == {}
    assert "reading message bodies in 'INBOX' failed (connection dropped)" in caplog.text
    # Asked once: a failed ask or answer is not asked again for the same messages.
    assert [c for c in source.calls if c[0] == "ask"] == [("ask", "INBOX", (1,))]
