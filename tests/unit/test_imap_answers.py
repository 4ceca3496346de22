"""UID sets both ways, and the untagged ESEARCH and STATUS answers a pipelined EXAMINE
reads (imap.sets, imap.answers): pure, against the RFCs' own examples."""

from __future__ import annotations

import random

from inboxwatch.imap.answers import esearch_uids, status_messages
from inboxwatch.imap.sets import uid_set, uids_in


def test_a_uid_set_reads_back_as_its_uids():
    rng = random.Random(5)
    for _ in range(200):
        uids = sorted(rng.sample(range(1, 400), rng.randint(1, 60)))
        assert uids_in(uid_set(uids).encode()) == uids
    assert uids_in(b"7:5,1,3") == [1, 3, 5, 6, 7]  # a range high to low (RFC 3501 9)


def test_an_esearch_answer_is_found_by_its_commands_tag():
    # As imaplib keeps `* ESEARCH …` lines: two searches answered out of order (Dovecot
    # runs pipelined searches side by side), one of them empty (RFC 4731 3.1: no ALL).
    said = [b'(TAG "A7") UID', b'(TAG "A6") UID ALL 3501:3503,3510']
    assert esearch_uids(said, b"A6") == [3501, 3502, 3503, 3510]
    assert esearch_uids(said, b"A7") == []
    assert esearch_uids(said, b"A8") is None  # not this command's: no answer
    # A sequence-number search (no UID) is not taken for UIDs.
    assert esearch_uids([b'(TAG "A9") ALL 1:3'], b"A9") is None


def test_a_status_answer_gives_its_message_count():
    assert status_messages([b'"INBOX" (MESSAGES 6155)']) == 6155
    assert status_messages([b'"x (MESSAGES 5)" (UIDNEXT 9 MESSAGES 3)']) == 3
    assert status_messages([b'"INBOX" (UIDNEXT 4)']) is None
    assert status_messages([]) is None
