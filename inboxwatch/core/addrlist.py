"""A fast, strict path for the address lists most mail carries; anything unusual goes to
`email.utils.getaddresses`. tests/unit/test_fastpath.py proves equality with it on the
whole shared corpus.

`simple_addresses`: `Name <a@b>, "Last, First" <c@d>, e@f` without comments, groups,
escapes or routes, equal to `email.utils.getaddresses`, else None.
"""

from __future__ import annotations

import re

_ADDR = r"[^<>()\s\",;:\\@\[\]]+@[^<>()\s\",;:\\@\[\]]+"
# Possessive (`*+`) blanks and name: both also match blanks, so with backtracking a blank
# run that ends in no `<` ("a" + 60 KB of spaces + "x") tried every split — cubic, hours.
# The name now runs greedily to the next special and keeps its trailing blanks, which the
# caller strips as the lazy name's following _WS did.
_WS = r"[ \t\r\n]*+"  # not \s: that also matches \x1c-\x1f, which the stdlib keeps
_ITEM = re.compile(
    _WS + r"(?:\"(?P<quoted>[^\"\\]*+)\"" + _WS + r"<(?P<qaddr>" + _ADDR + r")>"
    r"|(?P<name>[^\"<>()\\,;:@\[\]]*+)<(?P<addr>" + _ADDR + r")>"
    r"|(?P<bare>" + _ADDR + r"))" + _WS + r"(?:,|$)"
)
_SPACES = re.compile(r"[ \t\r\n]+")


def simple_addresses(value: str) -> list[tuple[str, str]] | None:
    """The plain address lists most mail carries; None where getaddresses must decide."""
    if not value.strip(" \t\r\n") or value.rstrip(" \t\r\n").endswith(","):
        return None
    out = []
    pos = 0
    while pos < len(value):
        match = _ITEM.match(value, pos)
        if match is None or match.end() == pos:
            return None
        if match["bare"]:
            out.append(("", match["bare"]))
        elif match["qaddr"]:
            out.append((match["quoted"], match["qaddr"]))
        else:
            name = match["name"]
            if "." in name or (not name.strip() and name):
                return None  # obs-phrase dots and odd spacing: leave them to the stdlib
            # Only the blanks _WS names: the stdlib keeps a no-break space or \x1c in a name.
            out.append((_SPACES.sub(" ", name.strip(" \t\r\n")), match["addr"]))
        pos = match.end()
    return out
