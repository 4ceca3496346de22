"""Closing messages (issue 18, item 1): thanks and confirmations that ask nothing, against
near misses that still need an answer. At least 40 real-looking cases a side."""

from __future__ import annotations

import pytest

from inboxwatch.core.closing import closing, reply_part

CLOSING = [
    "Thank you so much!",
    "Perfect, that fixed it.",
    "Got it 👍",
    "Danke, passt so",
    "Merci beaucoup !",
    "Gracias",
    "Thanks!",
    "Thanks a lot, that works.",
    "Great, thanks.",
    "Thx",
    "Cheers!",
    "Awesome, much appreciated.",
    "Sounds good, thanks!",
    "All good now, thank you.",
    "OK, will do.",
    "Noted, thanks.",
    "Received, thank you!",
    "That worked, thanks so much!",
    "Brilliant, thank you!",
    "Thanks, that was quick!",
    "No worries, thanks!",
    "Solved, thanks 🙏",
    "👍",
    "Vielen Dank!",
    "Danke, hat funktioniert.",
    "Alles klar, danke!",
    "Super, vielen Dank für die schnelle Hilfe.",
    "Perfekt, danke dir!",
    "Besten Dank und schöne Grüße",
    "Erledigt, danke.",
    "Merci, c'est parfait.",
    "Parfait, merci !",
    "Bien reçu, merci.",
    "Ça marche, merci beaucoup.",
    "Super, merci pour ton aide !",
    "Muchas gracias!",
    "Perfecto, gracias.",
    "Vale, gracias!",
    "Genial, ya funciona. ¡Gracias!",
    "Recibido, muchas gracias.",
    # The quoted message and the signature are not the reply.
    "Thanks, that fixed it!\n\nOn Mon, 23 Nov 2026 at 10:00, Sam <sam@x.example> wrote:\n"
    "> Can you try again?",
    "Danke!\n\nAm 23.11.2026 um 10:00 schrieb Sam:\n> Kannst du es nochmal versuchen?",
    "Merci !\n\nLe lun. 23 nov. 2026 à 10:00, Sam a écrit :\n> Pouvez-vous réessayer ?",
    "Gracias!\n\nEl lun, 23 nov 2026 a las 10:00, Sam escribió:\n> ¿Puedes probar otra vez?",
    "Thanks!\n\nSent from my iPhone",
    "Perfect, thanks\n-- \nAnna Keller\nClient Corp\nWhat we do: widgets",
    "Thanks!\n________________________________\nFrom: Sam\nSent: Monday\nSubject: Re: Invoice",
]

STILL_OPEN = [
    "Thanks — one more question: can I pay by card",
    "Thanks, but it still fails",
    "Thanks! When can we meet",
    "Thank you. Could you also send the invoice",
    "Thanks, what about the second file",
    "Great, thanks. How do I reset it",
    "Thanks?",
    "Thanks, it doesn't work though",
    "Thanks, not working for me",
    "Thanks, please send the PDF as well",
    "Thanks. Why is the total different",
    "Thanks, I still get an error",
    "Perfect. Another thing: the logo is blurry",
    "OK. Let me know when it ships",
    "Thanks, any update on the order",
    "Thanks, just following up on this",
    "Got it. Which version should I install",
    "Cheers. Where do I find the settings",
    "Thanks, the problem is back again",
    "Thanks for the fix, however the export is broken",
    "Danke, aber es geht immer noch nicht",
    "Danke! Wann kommt die Lieferung",
    "Vielen Dank. Könnten Sie mir die Rechnung schicken",
    "Danke, leider funktioniert es nicht",
    "Super, danke. Wie geht es weiter",
    "Danke, noch eine Frage zum Vertrag",
    "Merci, mais ça ne marche toujours pas",
    "Merci ! Quand pouvez-vous livrer",
    "Merci de m'envoyer la facture",
    "Merci, pourriez-vous vérifier encore",
    "Parfait. Comment je change le mot de passe",
    "Gracias, pero todavía no funciona",
    "Gracias. ¿Cuándo llega el pedido?",
    "Gracias, por favor envíame la factura",
    "Perfecto, ¿cómo lo instalo?",
    "Gracias, aún tengo un problema",
    "Hi Sam,\nthanks for the drafts. I looked at them with the team and we would like a few "
    "changes to the colours and the typography, mostly on the second page.\nBest, Anna",
    "",
    "See attached.",
    "Here is the signed contract.",
    "Hi,\n\nOn Mon, Sam wrote:\n> Thanks!",  # only a greeting of its own: nothing closes
]


@pytest.mark.parametrize("text", CLOSING)
def test_thanks_and_confirmations_close(text):
    judged = closing(text)
    assert judged is not None and "\n" not in judged


@pytest.mark.parametrize("text", STILL_OPEN)
def test_near_misses_still_need_an_answer(text):
    assert closing(text) is None


def test_reply_part_cuts_the_quote_and_signature():
    text = "Thanks!\r\n\r\nOn Mon, Sam wrote:\r\n> question?\r\n"
    assert reply_part(text) == "Thanks!"
    assert closing(text) == "Thanks!"


def test_enough_cases_a_side():
    assert len(CLOSING) >= 40 and len(STILL_OPEN) >= 40


def test_a_one_line_preview_loses_its_quote_too():
    """PREVIEW (RFC 8970) folds the quoted part into the same line."""
    assert closing("Merci beaucoup ! Le lun. 23 nov., Sam a écrit : Pouvez-vous ?") is not None
    assert closing("Thanks! On Mon, Sam <s@x.example> wrote: can you try again?") is not None
    assert closing("Thanks, I wrote on Monday: did you see it") is None
