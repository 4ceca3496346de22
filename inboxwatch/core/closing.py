"""Closing messages: after your reply, a short "thanks" that asks nothing needs no answer
(issue 18, item 1: 19 % of the flagged threads of a real archive were only that).

Pure text judgement on the start of the message's first text part, quoted reply and
signature stripped. Conservative: a question mark, a question word, a request, a
"but"/"still", a negation, or more than a few short lines keeps the message pending.
Languages: English, German, French, Spanish; a table each, easy to extend.
"""

from __future__ import annotations

import re
import unicodedata

MAX_CHARS = 160  # "a few short lines"
MAX_LINES = 4

# Where the quoted message or the signature begins: everything after is not the reply.
_CUT = re.compile(
    r"^(?:>|--\s*$|__{5,}|-{3,}\s*(?:original|urspr|message d'origine|mensaje original)"
    r"|on .{1,200}\bwrote:?\s*$|am .{1,200}\bschrieb\b|le .{1,200}\ba [ée]crit\s*:?\s*$"
    r"|el .{1,200}\bescribi[óo]\s*:?\s*$|from:\s|von:\s|de\s*:\s|sent from my |sent from outlook"
    r"|get outlook for |von meinem .{1,40} gesendet|envoy[ée] de mon |enviado desde mi )",
    re.IGNORECASE,
)
# Thanks and confirmations, per language (matched as whole words, case-folded).
CLOSING = {
    "en": r"thanks?|thank you|thx|ty|cheers|perfect|great|excellent|awesome|got it|noted"
    r"|works|worked|fixed|solved|sorted|sounds good|all good|ok|okay|will do|appreciated?"
    r"|much appreciated|brilliant|lovely|wonderful|done|received",
    "de": r"danke|dankesch[öo]n|vielen dank|besten dank|passt|perfekt|super|alles klar"
    r"|erledigt|funktioniert|klappt|prima|top|toll|gerne|verstanden|erhalten",
    "fr": r"merci|parfait|super|[çc]a marche|c'est not[ée]|entendu|d'accord|nickel|g[ée]nial"
    r"|top|re[çc]u|bien re[çc]u|impeccable",
    "es": r"gracias|perfecto|genial|vale|de acuerdo|entendido|listo|funciona|solucionado"
    r"|recibido|estupendo|excelente",
}
# Asks for something or says it is not over: any of these keeps the message pending.
OPEN = {
    "en": r"can|could|would|will you|please|pls|when|what|how|why|where|which|who|need"
    r"|still|but|however|one more|another|also|not|no longer|again|issue|problem|error"
    r"|question|wondering|let me know|any (?:update|news)|follow(?:ing)? up"
    r"|did you|do you|does it|are you|is it|is there|have you|has it|any chance",
    # No "was": English "that was quick" would read as German "what".
    "de": r"kannst|k[öo]nnten?|w[üu]rden?|bitte|wann|wie|warum|wieso|wo|welche[rsnm]?"
    r"|wer|noch|aber|jedoch|nicht|kein|leider|frage|fehler|problem|brauche|hast du"
    r"|haben sie|gibt es|ist es",
    "fr": r"pouvez|pourriez|pourrais|peux|merci de|svp|s'il vous pla[îi]t|quand|comment"
    r"|pourquoi|o[ùu]|quel(?:le)?s?|qui|encore|toujours|mais|cependant|pas|plus|question"
    r"|erreur|probl[èe]me|besoin|est-ce|avez-vous|as-tu",
    "es": r"puedes|puede|podr[íi]as?|por favor|cu[áa]ndo|c[óo]mo|por qu[ée]|d[óo]nde|cu[áa]l"
    r"|qui[ée]n|todav[íi]a|a[úu]n|pero|sin embargo|no|pregunta|error|problema|necesito"
    r"|tienes|hay",
}
_CLOSING = re.compile(r"\b(?:" + "|".join(CLOSING.values()) + r")\b", re.IGNORECASE)
_OPEN = re.compile(r"\b(?:" + "|".join(OPEN.values()) + r")\b|n['’]t\b", re.IGNORECASE)
# Closers that hold an "open" word: taken out before looking for one.
_BENIGN = re.compile(
    r"\b(?:no worries|no problem|no prob|kein problem|pas de probl[èe]me|sin problema"
    r"|de nada|not at all)\b",
    re.IGNORECASE,
)
_QUESTION = re.compile(r"[?¿？]")
_THUMBS = {"\U0001f44d", "\U0001f64f", "\U0001f64c", "\u2705", "\U0001f44c"}  # 👍 🙏 🙌 ✅ 👌


# The same attributions within a line: a server's PREVIEW (RFC 8970) folds the message
# into one line, the quoted part included.
_INLINE_QUOTE = re.compile(
    r"\s(?:on\s.{1,200}?\swrote|am\s.{1,200}?\sschrieb[^:]{0,80}|le\s.{1,200}?\sa\s[ée]crit"
    r"|el\s.{1,200}?\sescribi[óo]|-{3,}\s*original message)\s*:",
    re.IGNORECASE,
)


def reply_part(text: str) -> str:
    """The message's own words: up to the quoted message or the signature."""
    quoted = _INLINE_QUOTE.search(text)
    if quoted:
        text = text[: quoted.start()]
    kept = []
    for line in text.replace("\r\n", "\n").split("\n"):
        stripped = line.strip()
        if _CUT.match(stripped):
            break
        if stripped:
            kept.append(stripped)
    return "\n".join(kept)


def closing(text: str) -> str | None:
    """The words judged, when `text` only thanks or confirms and asks nothing; else None."""
    own = unicodedata.normalize("NFC", reply_part(text))
    if not own or len(own) > MAX_CHARS or own.count("\n") >= MAX_LINES:
        return None
    if _QUESTION.search(own) or _OPEN.search(_BENIGN.sub(" ", own)):
        return None
    if _CLOSING.search(own) or any(mark in own for mark in _THUMBS):
        return " ".join(own.split())
    return None
