"""`scan --format csv`: the overdue threads, a row each, for a spreadsheet.

Cells a sender writes (names, subjects) that begin like a formula get a leading `'`
(OWASP "CSV injection"): a subject `=HYPERLINK(…)` must stay text when the file is
opened in a spreadsheet.
"""

from __future__ import annotations

import csv
import io

from inboxwatch.cli.output import iso
from inboxwatch.core.model import Report

COLUMNS = (
    "account",
    "waiting_since",
    "waiting_hours",
    "name",
    "address",
    "subject",
    "folder",
    "uids",
    "message_ids",
    "thread_id",
    "reason",
)
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _text(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA) else value


def report_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for f in report.overdue:
        hours = round((report.as_of - f.waiting_since).total_seconds() / 3600, 1)
        writer.writerow(
            [
                _text(f.account),
                iso(f.waiting_since),
                hours,
                _text(f.correspondent.name),
                _text(f.correspondent.address),
                _text(f.subject),
                _text(f.folder),
                " ".join(map(str, f.uids)),
                _text(" ".join(f.message_ids)),
                _text(f.thread_id),
                _text(f.reason),
            ]
        )
    return out.getvalue()
