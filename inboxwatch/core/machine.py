"""Machine-sent mail that carries none of the standard marks (RFC 3834 Auto-Submitted,
Precedence, RFC 2369 List-*): the header that gives it away (issue 18, item 3). The IMAP
source fetches these fields with the others (parse.HEADER_FIELDS)."""

from __future__ import annotations

import re
from collections.abc import Callable

# Header -> (what it marks, as named to the user), checked in this order.
_MACHINE_HEADERS = (
    # RFC 8058 one-click unsubscribe: what Gmail's and Yahoo's 2024 rules ask of bulk
    # senders; Feedback-ID: Gmail's feedback loop, set by bulk senders and their ESPs.
    ("list-unsubscribe-post", "bulk:List-Unsubscribe-Post"),
    ("feedback-id", "bulk:Feedback-ID"),
    ("x-mc-user", "bulk:X-MC-User"),  # Mailchimp
    ("x-sg-eid", "bulk:X-SG-EID"),  # SendGrid
    # Tool notifications: a person's comment arrives from the tool with a Reply-To that
    # looks personal (reply+…@reply.github.com), so the sender rules alone miss them.
    ("x-github-reason", "notification:X-GitHub-Reason"),
    ("x-gitlab-project", "notification:X-GitLab-Project"),
    ("x-jira-fingerprint", "notification:X-JIRA-FingerPrint"),
    ("x-bugzilla-reason", "notification:X-Bugzilla-Reason"),
    # Exchange: a server-side inbox rule answered or forwarded it (no Auto-Submitted).
    ("x-ms-exchange-inbox-rules-loop", "automated:X-MS-Exchange-Inbox-Rules-Loop"),
)
_BULK_MAILER = re.compile(
    r"^(?:mailchimp|phplist|mailjet|sendinblue|brevo|hubspot|activecampaign|campaign monitor"
    r"|constant contact|klaviyo|mailerlite|sendy|listmonk|acymailing|mailpoet|mautic)",
    re.IGNORECASE,
)


def machine_mark(get: Callable[..., str]) -> str:
    """`kind:Header` for the first sign of machine-sent mail beyond RFC 3834/2369's."""
    for name, mark in _MACHINE_HEADERS:
        if get(name):
            return mark
    # Exchange marks its own out-of-office replies "All"; Outlook's other values
    # (DR, RN, OOF…) also go on people's mail sent by scripts, so only "All" counts.
    if get("x-auto-response-suppress", "").strip().lower() == "all":
        return "automated:X-Auto-Response-Suppress: All"
    if get("list-post", "").strip().upper() == "NO":  # RFC 2369: an announcement list
        return "bulk:List-Post: NO"
    if _BULK_MAILER.match(get("x-mailer", "").strip()):
        return "bulk:X-Mailer"
    return ""
