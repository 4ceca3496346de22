"""An OAuth 2.0 provider on loopback that plays Google, Microsoft and a `custom` one for
the tests, and validates tokens for the test Dovecot's oauth2 passdb (introspection,
RFC 7662) and for the aiosmtpd XOAUTH2 handler.

Served over plain HTTP (`url`: Dovecot's introspection, `custom` endpoints) and over HTTPS
with a trustme certificate (`tls_url`: msal insists on an https authority). Everything
it does is recorded in `calls`, so a test can prove how often a token was renewed.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import secrets
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import trustme


@dataclass
class Grant:
    user: str
    expires_at: float


@dataclass
class ProviderState:
    user: str = "alice"
    lifetime: int = 3600  # seconds an access token is valid
    rotate: bool = True  # a renewal returns a new refresh token and spends the old one
    delay: float = 0.0  # seconds the token endpoint takes (two refreshers at once)
    device_script: list[str] = field(default_factory=list)  # errors before success
    device_expires_in: int = 600
    refuse_logins: bool = False  # the mail server takes no token (no IMAP permission)
    access: dict[str, Grant] = field(default_factory=dict)
    refresh: dict[str, str] = field(default_factory=dict)  # refresh token -> user
    codes: dict[str, tuple[str, str]] = field(default_factory=dict)  # code -> challenge, uri
    calls: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def issue(self, lifetime: int | None = None) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        life = self.lifetime if lifetime is None else lifetime
        self.access[access] = Grant(self.user, time.time() + life)
        self.refresh[refresh] = self.user
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": life,
            "refresh_token": refresh,
            "scope": "mail",
        }

    def valid(self, token: str) -> bool:
        grant = self.access.get(token)
        return grant is not None and grant.expires_at > time.time()

    def revoke_all(self) -> None:
        self.access.clear()
        self.refresh.clear()


class _Handler(http.server.BaseHTTPRequestHandler):
    state: ProviderState
    base: str

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path.endswith("/.well-known/openid-configuration"):
            tenant = url.path.split("/")[1]
            root = f"{self.base}/{tenant}/oauth2/v2.0"
            self._json(
                200,
                {
                    "authorization_endpoint": f"{root}/authorize",
                    "token_endpoint": f"{root}/token",
                    "device_authorization_endpoint": f"{root}/devicecode",
                    "issuer": f"{self.base}/{tenant}/v2.0",
                },
            )
        elif url.path.endswith("/authorize"):
            self._authorize(query)
        else:
            self._json(404, {"error": "not_found"})

    def _authorize(self, query: dict[str, str]) -> None:
        """The user signs in at once: back to the redirect URI with a code."""
        code = secrets.token_urlsafe(16)
        self.state.codes[code] = (query.get("code_challenge", ""), query["redirect_uri"])
        self.state.calls.append("authorize")
        back = {"code": code, "state": query.get("state", "")}
        self.send_response(302)
        self.send_header("Location", f"{query['redirect_uri']}?{urllib.parse.urlencode(back)}")
        self.end_headers()

    def do_POST(self) -> None:
        size = int(self.headers.get("Content-Length", 0))
        form = dict(urllib.parse.parse_qsl(self.rfile.read(size).decode()))
        path = urllib.parse.urlsplit(self.path).path
        with self.state.lock:
            if path == "/introspect":
                self.state.calls.append("introspect")
                token = form.get("token", "")
                ok = self.state.valid(token) and not self.state.refuse_logins
                user = self.state.access[token].user if ok else ""
                self._json(200, {"active": True, "username": user} if ok else {"active": False})
            elif path.endswith("devicecode") or path == "/device":
                self._device_start()
            elif path.endswith("token"):
                time.sleep(self.state.delay)
                self._token(form)
            else:
                self._json(404, {"error": "not_found"})

    def _device_start(self) -> None:
        self.state.calls.append("device")
        self._json(
            200,
            {
                "device_code": "dev-" + secrets.token_urlsafe(8),
                "user_code": "ABCD-EFGH",
                "verification_uri": f"{self.base}/device",
                "interval": 1,
                "expires_in": self.state.device_expires_in,
                "message": "To sign in, open the test page and enter ABCD-EFGH",
            },
        )

    def _token(self, form: dict[str, str]) -> None:
        grant = form.get("grant_type", "")
        self.state.calls.append(grant)
        if grant == "refresh_token":
            self._renew(form.get("refresh_token", ""))
        elif grant == "authorization_code":
            self._exchange(form)
        elif grant.endswith("device_code"):
            script = self.state.device_script
            if script:
                self._json(400, {"error": script.pop(0)})
            else:
                self._json(200, self.state.issue())
        else:
            self._json(400, {"error": "unsupported_grant_type"})

    def _renew(self, refresh: str) -> None:
        if refresh not in self.state.refresh:
            self._json(
                400,
                {
                    "error": "invalid_grant",
                    "error_description": "Token has been expired or revoked.\nTrace ID: 42",
                },
            )
            return
        answer = self.state.issue()
        if self.state.rotate:
            del self.state.refresh[refresh]
        else:
            del self.state.refresh[answer.pop("refresh_token")]
        self._json(200, answer)

    def _exchange(self, form: dict[str, str]) -> None:
        challenge, uri = self.state.codes.pop(form.get("code", ""), ("", ""))
        verifier = form.get("code_verifier", "")
        digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if not uri or uri != form.get("redirect_uri") or digest.rstrip(b"=").decode() != challenge:
            self._json(400, {"error": "invalid_grant", "error_description": "bad code or PKCE"})
            return
        self._json(200, self.state.issue())


class Provider:
    """`with Provider(ca) as provider:` both listeners run until the block ends."""

    def __init__(self, ca: trustme.CA) -> None:
        self.state = ProviderState()
        self.plain = self._server()
        self.secure = self._server()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self.secure.socket = context.wrap_socket(self.secure.socket, server_side=True)
        self.url = f"http://127.0.0.1:{self.plain.server_address[1]}"
        self.tls_url = f"https://127.0.0.1:{self.secure.server_address[1]}"
        self.plain.RequestHandlerClass.base = self.url  # type: ignore[attr-defined]
        self.secure.RequestHandlerClass.base = self.tls_url  # type: ignore[attr-defined]

    def _server(self) -> http.server.ThreadingHTTPServer:
        handler = type("Handler", (_Handler,), {"state": self.state, "base": ""})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        return server

    def __enter__(self) -> Provider:
        for server in (self.plain, self.secure):
            threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        for server in (self.plain, self.secure):
            server.shutdown()
            server.server_close()

    def oauth2(self, **extra: Any) -> dict[str, Any]:
        """An `[accounts.oauth2]` table for a `custom` provider with the device flow."""
        return {
            "provider": "custom",
            "client_id": "inboxwatch-test",
            "token_endpoint": f"{self.url}/token",
            "device_authorization_endpoint": f"{self.url}/device",
            **extra,
        }
