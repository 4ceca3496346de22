"""`inboxwatch auth NAME`: the one interactive sign-in, on a machine without a browser.

- Microsoft, and a `custom` provider with a device endpoint: the device flow (RFC 8628):
  print a code and an address, poll until the user is done on any other device.
- Google (and other `custom` providers): the installed-app loopback flow with PKCE (RFC
  8252, RFC 7636). Google refuses the device flow for Gmail's scope and retired the
  copy/paste "OOB" flow in 2022. The browser is sent back to http://127.0.0.1:<port>/;
  on a headless machine that address does not load, and the user pastes it from the
  address bar instead. `access_type=offline` and `prompt=consent` make Google issue a
  refresh token every time (without `prompt`, only at the first consent).
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import queue
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from inboxwatch.auth.providers import client_form, endpoints, post_form, scopes, token_error
from inboxwatch.auth.refresh import TokenSource, from_answer
from inboxwatch.auth.tokens import Tokens
from inboxwatch.config import OAuth2
from inboxwatch.errors import AuthError

Say = Callable[[str], None]
SIGN_IN_WAIT = 600.0  # seconds the loopback flow waits for the browser or a pasted address
_DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def sign_in(source: TokenSource, username: str, say: Say, pasted: Callable[[], str]) -> Tokens:
    """Sign in interactively and store the tokens; `pasted` reads a line the user pastes."""
    oauth2 = source.oauth2
    if oauth2.provider == "microsoft":
        answer = _microsoft_device(oauth2, say)
    elif oauth2.provider == "custom" and oauth2.device_authorization_endpoint:
        answer = _custom_device(oauth2, source.where, say)
    else:
        answer = _loopback(oauth2, source.where, say, pasted)
    if "access_token" not in answer:
        raise token_error(source.name, answer)
    tokens = from_answer(answer, oauth2, None)
    if not tokens.refresh_token:
        raise AuthError(
            "the provider issued no refresh token, so the sign-in would end within the hour; "
            "Microsoft needs the offline_access scope, Google a consent (see the README FAQ)"
        )
    tokens.signed_in_as = tokens.signed_in_as or username
    with source.file.locked():
        source.file.write(tokens)
    return tokens


def poll_device(attempt: Callable[[], dict[str, Any]], interval: int, expires_in: int) -> Any:
    """Poll the token endpoint every `interval` seconds until the user is done (RFC 8628
    3.4-3.5: `authorization_pending` waits, `slow_down` adds 5 seconds)."""
    ends = time.monotonic() + expires_in
    while True:
        answer = attempt()
        error = answer.get("error")
        if error == "slow_down":
            interval += 5
        elif error != "authorization_pending":
            return answer
        if time.monotonic() + interval > ends:
            return {"error": "expired_token", "error_description": "the code expired"}
        time.sleep(interval)


def _microsoft_device(oauth2: OAuth2, say: Say) -> Any:
    from inboxwatch.auth.microsoft import Microsoft  # msal: only when needed

    microsoft = Microsoft(oauth2, scopes(oauth2))
    flow = microsoft.start_device_flow()
    if "user_code" not in flow:
        return flow  # an error answer
    say(str(flow.get("message") or _device_message(flow)))
    return poll_device(
        lambda: microsoft.poll_device_flow(flow),
        int(flow.get("interval", 5)),
        int(flow.get("expires_in", 900)),
    )


def _custom_device(oauth2: OAuth2, where: str, say: Say) -> Any:
    client = client_form(oauth2, where)
    flow = post_form(
        oauth2.device_authorization_endpoint, {**client, "scope": " ".join(scopes(oauth2))}
    )
    if "device_code" not in flow:
        return flow
    say(_device_message(flow))
    form = {**client, "grant_type": _DEVICE_GRANT, "device_code": str(flow["device_code"])}
    return poll_device(
        lambda: post_form(oauth2.token_endpoint, form),
        int(flow.get("interval", 5)),
        int(flow.get("expires_in", 900)),
    )


def _device_message(flow: dict[str, Any]) -> str:
    where = flow.get("verification_uri") or flow.get("verification_url")
    return f"To sign in, open {where} in any browser and enter the code {flow['user_code']}"


def _loopback(oauth2: OAuth2, where: str, say: Say, pasted: Callable[[], str]) -> Any:
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    state = secrets.token_urlsafe(16)
    with _Receiver() as receiver:
        query = {
            "response_type": "code",
            "client_id": oauth2.client_id,
            "redirect_uri": receiver.redirect_uri,
            "scope": " ".join(scopes(oauth2)),
            "state": state,
            "code_challenge": challenge.rstrip(b"=").decode("ascii"),
            "code_challenge_method": "S256",
        }
        if oauth2.provider == "google":
            query |= {"access_type": "offline", "prompt": "consent"}
        url = f"{endpoints(oauth2).authorization}?{urllib.parse.urlencode(query)}"
        say(
            f"Open this address in a browser and sign in:\n\n  {url}\n\n"
            f"Waiting for the browser to come back to {receiver.redirect_uri} . If the "
            "browser runs on another machine, that page will not load: copy the whole "
            "address from its address bar and paste it here."
        )
        back = receiver.wait(pasted)
    params = urllib.parse.parse_qs(urllib.parse.urlsplit(back.strip()).query)
    if params.get("state") != [state]:
        raise AuthError("the address pasted is not the answer to this sign-in; run it again")
    if "code" not in params:
        error = params.get("error", ["no code"])[0]
        raise AuthError(f"sign-in not completed ({error}); run it again")
    form = {
        "grant_type": "authorization_code",
        "code": params["code"][0],
        "redirect_uri": receiver.redirect_uri,
        "code_verifier": verifier,
    }
    return post_form(endpoints(oauth2).token, form | client_form(oauth2, where))


class _Receiver:
    """An HTTP listener on 127.0.0.1 for the one redirect (RFC 8252 7.3: loopback, any port)."""

    def __init__(self) -> None:
        self.answers: queue.Queue[str] = queue.Queue()
        answers = self.answers

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urllib.parse.urlsplit(self.path).query
                done = "state=" in query
                self.send_response(200 if done else 404)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.end_headers()
                if done:
                    self.wfile.write(b"inboxwatch: signed in. You can close this tab.\n")
                    answers.put(f"http://127.0.0.1{self.path}")

            def log_message(self, format: str, *args: Any) -> None:
                """Silent: the request line holds the authorization code."""

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.redirect_uri = f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __enter__(self) -> _Receiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait(self, pasted: Callable[[], str]) -> str:
        """The redirect, from the browser or pasted by the user, whichever comes first."""

        def read() -> None:
            line = pasted()
            if line.strip():
                self.answers.put(line)

        threading.Thread(target=read, daemon=True).start()
        try:
            return self.answers.get(timeout=SIGN_IN_WAIT)
        except queue.Empty:
            raise AuthError(
                f"no sign-in within {SIGN_IN_WAIT / 60:g} minutes; run it again"
            ) from None
