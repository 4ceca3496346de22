"""What each provider needs: endpoints, default scopes, the client secret, and one form
POST to a token endpoint (RFC 6749 3.2) with its errors told apart.

Microsoft goes through msal (auth.microsoft); Google and `custom` providers through this
module and the standard library: their token endpoint is one form POST, and Google's
own libraries (google-auth-oauthlib) would add five packages for it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inboxwatch.config import OAuth2
from inboxwatch.errors import AuthError, ConfigError, InboxwatchError, ServerError, SignInNeeded
from inboxwatch.secretfiles import read_secret_file

GOOGLE_AUTHORIZE = "https://accounts.google.com/o/oauth2/v2/auth"
GOOGLE_TOKEN = "https://oauth2.googleapis.com/token"
MICROSOFT_IMAP = "https://outlook.office.com/IMAP.AccessAsUser.All"
MICROSOFT_SMTP = "https://outlook.office.com/SMTP.Send"
DEFAULT_SCOPES = {
    "google": ["https://mail.google.com/"],
    "microsoft": [MICROSOFT_IMAP, MICROSOFT_SMTP, "offline_access"],
    "custom": [],
}
HTTP_TIMEOUT = 30.0  # seconds for one call to a provider's endpoint


@dataclass(frozen=True)
class Endpoints:
    authorization: str
    token: str


def endpoints(oauth2: OAuth2) -> Endpoints:
    """Google's, or a custom provider's. Microsoft's come from msal, which reads them from
    the authority's OpenID configuration (auth.microsoft)."""
    if oauth2.provider == "google":
        return Endpoints(GOOGLE_AUTHORIZE, GOOGLE_TOKEN)
    return Endpoints(oauth2.authorization_endpoint, oauth2.token_endpoint)


def scopes(oauth2: OAuth2) -> list[str]:
    return list(oauth2.scopes) or list(DEFAULT_SCOPES[oauth2.provider])


def _client_secret(oauth2: OAuth2, where: str) -> str | None:
    if oauth2.client_secret_file:
        path = Path(oauth2.client_secret_file).expanduser()
        return read_secret_file(path, f"{where}.oauth2.client_secret_file").strip()
    return oauth2.client_secret.get_secret_value() if oauth2.client_secret else None


def client_form(oauth2: OAuth2, where: str) -> dict[str, str]:
    """How the client names itself in every request to the provider (RFC 6749 2.3.1):
    its id, and its secret where it has one (Google desktop clients; not Microsoft's)."""
    form = {"client_id": oauth2.client_id}
    secret = _client_secret(oauth2, where)
    if secret:
        form["client_secret"] = secret
    return form


def post_form(url: str, form: dict[str, str]) -> dict[str, Any]:
    """The JSON answer of a token endpoint: a token, or `{"error": ...}` (RFC 6749 5.2)."""
    # Imported here: a poll whose access token is still good asks no endpoint, and the
    # HTTP client cost every `run --once` ~15 ms to import.
    import urllib.error
    import urllib.parse
    import urllib.request

    request = urllib.request.Request(
        url,
        data=urllib.parse.urlencode(form).encode("ascii"),
        headers={"Accept": "application/json"},
    )
    host = urllib.parse.urlsplit(url).hostname or url
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as answer:
            body = answer.read()
    except urllib.error.HTTPError as exc:  # 400 and 401 carry the OAuth error as JSON
        body = exc.read()
        if not body.lstrip().startswith(b"{"):
            raise ServerError(f"{host} answered HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ServerError(f"cannot reach {host} ({reason}); try again later") from None
    try:
        data = json.loads(body)
    except ValueError:
        raise ServerError(f"{host} answered with something other than JSON") from None
    if not isinstance(data, dict):
        raise ServerError(f"{host} answered with something other than a JSON object")
    return data


def token_error(name: str, answer: dict[str, Any]) -> InboxwatchError:
    """An OAuth error answer as the error the user can act on. The description is the
    provider's own first line (Microsoft appends trace ids and timestamps)."""
    error = str(answer.get("error", "unknown_error"))
    description = str(answer.get("error_description") or "").strip().splitlines()
    why = f"{error}: {description[0]}" if description else error
    if error == "invalid_grant":
        # Revoked, the password changed, consent withdrawn, or a Google app in "testing"
        # status (its refresh tokens end after 7 days: README FAQ).
        return SignInNeeded(f"the sign-in has ended ({why}); run `inboxwatch auth {name}` again")
    if error in ("invalid_client", "unauthorized_client", "invalid_scope", "invalid_request"):
        return ConfigError(
            f"the provider refused the app registration ({why}); check client_id, the "
            "client secret and scopes in the oauth2 table"
        )
    if error in ("access_denied", "expired_token"):
        return AuthError(f"sign-in not completed ({why}); run `inboxwatch auth {name}` again")
    return ServerError(f"the provider's token endpoint failed ({why}); try again later")
