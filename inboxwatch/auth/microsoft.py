"""Microsoft identity platform through msal: the device-code sign-in and the refresh.

msal is imported here alone, and only when a Microsoft account signs in or refreshes
(~0.15 s). Its HTTP goes through `_Http`, a requests Session with a timeout on every
call (msal's own default has none: a stalled login.microsoftonline.com would hold a
poll), passed as msal's injectable `http_client`.
"""

from __future__ import annotations

from typing import Any

from inboxwatch.auth.providers import HTTP_TIMEOUT
from inboxwatch.config import OAuth2
from inboxwatch.errors import ConfigError, ServerError

try:
    import msal
    import requests
except ImportError:  # the optional extra
    raise ConfigError(
        "provider = microsoft needs msal: pip install 'inboxwatch[microsoft]' (the container "
        "image has it)"
    ) from None

DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
# msal adds these itself and refuses them in `scopes` (ValueError).
_RESERVED = {"openid", "profile", "offline_access"}


class _Http(requests.Session):
    def request(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", HTTP_TIMEOUT)
        return super().request(*args, **kwargs)


class Microsoft:
    def __init__(self, oauth2: OAuth2, scopes: list[str]) -> None:
        authority = oauth2.authority.rstrip("/")
        self.scopes = [s for s in scopes if s not in _RESERVED]
        try:
            # Building the app fetches the authority's OpenID configuration (one GET).
            self.app = msal.PublicClientApplication(
                oauth2.client_id,
                authority=f"{authority}/{oauth2.tenant}",
                http_client=_Http(),
                # msal checks an unknown authority host against login.microsoftonline.com;
                # a configured sovereign or private authority is trusted as given.
                instance_discovery=None if authority == DEFAULT_AUTHORITY else False,
            )
        except (requests.RequestException, ValueError) as exc:
            raise ServerError(
                f"cannot reach Microsoft's sign-in service at {authority} ({_short(exc)}); "
                "check the tenant and your network"
            ) from None

    def refresh(self, refresh_token: str) -> dict[str, Any]:
        return self._call(
            lambda: self.app.acquire_token_by_refresh_token(refresh_token, scopes=self.scopes)
        )

    def start_device_flow(self) -> dict[str, Any]:
        """`user_code`, `verification_uri`, `message`, `interval`, `expires_in`; or `error`."""
        return self._call(lambda: self.app.initiate_device_flow(scopes=self.scopes))

    def poll_device_flow(self, flow: dict[str, Any]) -> dict[str, Any]:
        """One poll: a token, or `{"error": "authorization_pending" | "slow_down" | ...}`.
        msal's own loop sleeps in whole seconds until the flow expires; ours stops on ^C
        and says what is happening."""
        return self._call(
            lambda: self.app.acquire_token_by_device_flow(flow, exit_condition=lambda _: True)
        )

    @staticmethod
    def _call(request: Any) -> dict[str, Any]:
        try:
            answer: dict[str, Any] = request()
        except requests.RequestException as exc:
            raise ServerError(f"cannot reach Microsoft's sign-in service ({_short(exc)})") from None
        return answer


def _short(exc: Exception) -> str:
    return type(exc).__name__ if not str(exc) else str(exc).splitlines()[0][:160]
