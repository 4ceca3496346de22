"""Links in the digest: `open_url` (a webmail preset or a template) and the reply `mailto:`.

Pure string work, no I/O: the config validates a template with `open_template`, the
digest fills it in with `open_link` and builds the reply with `reply_link`.
"""

from __future__ import annotations

import string
from urllib.parse import quote

# Every value is percent-encoded (RFC 3986, nothing left "safe"), so a subject with `&`,
# `#` or `/` cannot change the link's shape.
PLACEHOLDERS = ("message_id", "subject", "uid", "folder", "address")

# Webmail presets. What each can reach, checked against the providers' own links:
# - gmail: the search operator `rfc822msgid:` finds a message by its Message-ID, and
#   /mail/u/<address>/ picks the signed-in account of that address.
# - fastmail: its search takes `msgid:` too.
# - roundcube (needs your server's address: "roundcube:https://webmail.example.org"):
#   opens the message itself by folder and UID. Folders with non-ASCII names are
#   named in IMAP's UTF-7 there, which this link does not produce.
# - proton: Proton's IMAP Bridge keeps its own Message-IDs, so the link searches
#   for the subject.
# - outlook: Outlook on the web links a message only by a Graph/EWS id, which IMAP
#   never sees, and its search takes no query from the URL; the link opens the inbox.
PRESETS = {
    "gmail": "https://mail.google.com/mail/u/{address}/#search/rfc822msgid%3A{message_id}",
    "fastmail": "https://app.fastmail.com/mail/search:msgid%3A{message_id}/",
    "roundcube": "{base}/?_task=mail&_action=show&_mbox={folder}&_uid={uid}",
    "proton": "https://mail.proton.me/u/0/all-mail#keyword={subject}",
    "outlook": "https://outlook.office.com/mail/inbox",
}


def open_template(value: str) -> str:
    """The URL template `open_url` stands for (a preset's, or its own); ValueError when
    it is neither a preset nor an http(s) template with only known placeholders."""
    name, _, base = value.partition(":")
    if name == "roundcube":
        if not base.startswith(("http://", "https://")):
            raise ValueError('the roundcube preset needs its address: "roundcube:https://…"')
        return PRESETS["roundcube"].replace("{base}", base.rstrip("/"))
    if value in PRESETS:
        return PRESETS[value]
    if not value.startswith(("https://", "http://")):
        presets = ", ".join(sorted(PRESETS))
        raise ValueError(f"open_url must be a preset ({presets}) or an http(s) URL template")
    for _, field, spec, conversion in string.Formatter().parse(value):
        if field is not None and (field not in PLACEHOLDERS or spec or conversion):
            known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            raise ValueError(f"open_url: unknown placeholder {{{field}}} (use {known})")
    return value


def bare_id(message_id: str) -> str:
    """A Message-ID without its angle brackets, as search operators take it."""
    return message_id.strip().removeprefix("<").removesuffix(">")


def open_link(template: str, **values: str | int) -> str:
    """The template with each placeholder's value percent-encoded."""
    return template.format_map({k: quote(str(v), safe="") for k, v in values.items()})


def reply_subject(subject: str) -> str:
    """`Re: subject`, without stacking a second `Re:`."""
    return subject if subject[:3].lower() == "re:" else f"Re: {subject}"


def reply_link(to: str, subject: str, in_reply_to: str) -> str:
    """A `mailto:` URI (RFC 6068) that starts the reply: the address in the path,
    `subject` and `In-Reply-To` as header fields, all percent-encoded UTF-8 (RFC 6068
    section 2: `%` and the characters outside `unreserved` must be encoded; `@` may
    stay in the address)."""
    fields = [f"subject={quote(reply_subject(subject), safe='')}"]
    if in_reply_to:
        fields.append(f"In-Reply-To={quote(in_reply_to, safe='')}")
    return f"mailto:{quote(to, safe='@')}?{'&'.join(fields)}"
