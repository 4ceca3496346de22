"""`scan --format csv`: the overdue threads, a row each, for a spreadsheet.

Cells a sender writes (names, subjects) that begin like a formula get a leading `'`
(OWASP "CSV injection"): a subject `=HYPERLINK(…)` must stay text when the file is
opened in a spreadsheet.
"""

from __future__ import annotations

import csv
import io

from inboxwatch.cli.output import finding_json
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
    for finding in report.overdue:
        entry = finding_json(finding, report.as_of)  # the JSON report's values, flattened
        writer.writerow(
            [
                _text(entry["account"]),
                entry["waiting_since"],
                entry["waiting_hours"],
                _text(entry["correspondent"]["name"]),
                _text(entry["correspondent"]["address"]),
                _text(entry["subject"]),
                _text(entry["folder"]),
                " ".join(map(str, entry["uids"])),
                _text(" ".join(entry["message_ids"])),
                _text(entry["thread_id"]),
                _text(entry["reason"]),
            ]
        )
    return out.getvalue()
