"""A signed-in identity's access token, renewed before it expires and once after a
server rejected it; an ended sign-in stops that identity without asking the provider
again (no retry storm: the token file remembers it for every process)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from inboxwatch.auth.providers import client_form, endpoints, post_form, scopes, token_error
from inboxwatch.auth.tokens import TokenFile, Tokens, token_path
from inboxwatch.config import Account, OAuth2, Settings, smtp_identity
from inboxwatch.errors import SignInNeeded

log = logging.getLogger(__name__)
EARLY = 300.0  # seconds before expiry a token is renewed: a poll may take that long


class TokenSource:
    """`name` is what `inboxwatch auth NAME` signs in: an account, or `smtp`."""

    def __init__(self, name: str, oauth2: OAuth2, file: TokenFile, where: str) -> None:
        self.name = name
        self.oauth2 = oauth2
        self.file = file
        self.where = where  # the config table, for error messages: accounts[work]

    def access_token(self, rejected: str | None = None) -> str:
        """A token valid for a while yet; `rejected`: the server refused that one."""
        tokens = self._usable(self.file.read())
        if rejected is None and fresh(tokens):
            return tokens.access_token
        with self.file.locked():
            # Another process may have renewed it meanwhile: use theirs, do not renew twice
            # (a rotated refresh token would be spent twice).
            tokens = self._usable(self.file.read())
            if fresh(tokens) and tokens.access_token != rejected:
                return tokens.access_token
            return self._renew(tokens).access_token

    def _usable(self, tokens: Tokens | None) -> Tokens:
        again = f"run `inboxwatch auth {self.name}`"
        if tokens is None:
            raise SignInNeeded(f"not signed in yet; {again} once")
        if tokens.ended:
            raise SignInNeeded(tokens.ended)
        if (tokens.provider, tokens.client_id) != (self.oauth2.provider, self.oauth2.client_id):
            raise SignInNeeded(f"signed in with another app registration; {again} again")
        return tokens

    def _renew(self, tokens: Tokens) -> Tokens:
        answer = self._ask(tokens.refresh_token)
        if "access_token" not in answer:
            error = token_error(self.name, answer)
            if isinstance(error, SignInNeeded):
                tokens.ended = str(error)  # every process sees it: nobody asks again
                self.file.write(tokens)
            raise error
        renewed = from_answer(answer, self.oauth2, tokens)
        self.file.write(renewed)
        log.debug("%s: access token renewed, valid for %ds", self.name, answer_lifetime(answer))
        return renewed

    def _ask(self, refresh_token: str) -> dict[str, Any]:
        if self.oauth2.provider == "microsoft":
            from inboxwatch.auth.microsoft import Microsoft  # msal: only when needed

            return Microsoft(self.oauth2, scopes(self.oauth2)).refresh(refresh_token)
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return post_form(endpoints(self.oauth2).token, form | client_form(self.oauth2, self.where))


def fresh(tokens: Tokens) -> bool:
    """Valid for a while yet: EARLY seconds, or a quarter of its lifetime when that is
    shorter (a provider issuing 5-minute tokens must not be asked at every login)."""
    margin = min(EARLY, (tokens.expires_at - tokens.refreshed_at) / 4)
    return tokens.expires_at - time.time() > margin


def answer_lifetime(answer: dict[str, Any]) -> int:
    try:
        return int(answer.get("expires_in", 3600))
    except (TypeError, ValueError):
        return 3600


def from_answer(answer: dict[str, Any], oauth2: OAuth2, before: Tokens | None) -> Tokens:
    """Tokens from a token endpoint's answer. No refresh token in it: the old one stays
    valid (RFC 6749 6); a new one replaces it (rotation)."""
    now = time.time()
    granted = answer.get("scope")
    claims = answer.get("id_token_claims") or {}
    who = claims.get("preferred_username") or (before.signed_in_as if before else "")
    kept = before.refresh_token if before else ""
    return Tokens(
        provider=oauth2.provider,
        client_id=oauth2.client_id,
        access_token=str(answer["access_token"]),
        expires_at=now + answer_lifetime(answer),
        refresh_token=str(answer.get("refresh_token") or kept),
        scopes=granted.split() if isinstance(granted, str) else scopes(oauth2),
        signed_in_as=str(who),
        signed_in_at=before.signed_in_at if before else now,
        refreshed_at=now,
    )


def tokens_dir(settings: Settings) -> Path:
    return settings.state.path_resolved().parent / "tokens"


def account_tokens(account: Account, directory: Path) -> TokenSource:
    assert account.oauth2 is not None  # config: auth = oauth2 needs the table
    path = token_path(directory, f"account-{account.name}")
    return TokenSource(account.name, account.oauth2, TokenFile(path), f"accounts[{account.name}]")


def smtp_tokens(settings: Settings) -> TokenSource | None:
    """[smtp]'s own sign-in (`inboxwatch auth smtp`), or the account's it shares; None for
    a password."""
    if settings.smtp.auth != "oauth2":
        return None
    shared = smtp_identity(settings)
    if shared is not None:
        return account_tokens(shared, tokens_dir(settings))
    assert settings.smtp.oauth2 is not None  # config checked it
    path = token_path(tokens_dir(settings), "smtp")
    return TokenSource("smtp", settings.smtp.oauth2, TokenFile(path), "smtp")
