"""Who may talk to the UI: loopback by default, a token on every request otherwise.

* ``serve()`` refuses a non-loopback bind without a token (:func:`check_bind`).
* With a token, every request (page, API, static file, download) must carry it: header
  ``Authorization: Bearer <token>`` or ``X-Runyard-Token``, query ``?token=``, or the
  ``runyard_token`` cookie (a digest of the token, HttpOnly) that a first ``?token=`` visit sets. Anything else gets 401.
* Without a token (loopback only), the ``Host`` header must name a loopback host, so a web page
  elsewhere cannot reach the UI through DNS rebinding.
* Every response carries a Content-Security-Policy without inline scripts, ``nosniff`` and
  ``no-referrer`` (a token in a URL never leaks through a link).
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
from http.cookies import SimpleCookie
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qs

from ..errors import ConfigurationError

COOKIE = "runyard_token"
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "ip6-localhost"}
# plotly's WebGL traces (parallel coordinates) compile shaders with new Function: unsafe-eval
CSP = ("default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
       "form-action 'self'")
SECURITY_HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]

Scope = dict[str, Any]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def is_loopback(host: str) -> bool:
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve on a non-loopback address without a token.

    Raises:
        ConfigurationError: ``host`` is not loopback and ``token`` is empty.
    """
    if not is_loopback(host) and not token:
        raise ConfigurationError(
            f"refusing to serve the runyard UI on {host!r} without a token: anyone who can reach "
            "that address could read every run. Pass --token <secret> (or bind 127.0.0.1 and "
            "use an SSH tunnel / kubectl port-forward)")


def _host_of(header: str) -> str:
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class TokenGate:
    """ASGI middleware enforcing the rules of this module's docstring."""

    def __init__(self, app: Any, token: str | None):
        self.app = app
        self.token = token or None
        # the cookie holds a digest, not the token: any token text makes a valid cookie value
        self.cookie_value = hashlib.sha256(f"runyard-ui:{token}".encode()).hexdigest() if token else ""

    async def __call__(self, scope: Scope, receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        set_cookie = False
        if self.token is None:
            if not is_loopback(_host_of(headers.get("host", "127.0.0.1"))):
                return await _plain(send, 403, "Host not allowed: this UI answers on loopback "
                                               "names only (127.0.0.1, localhost)")
        else:
            given, source = _presented_token(scope, headers)
            expected = self.cookie_value if source == "cookie" else self.token
            if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
                return await _plain(send, 401, "runyard UI: a valid token is required "
                                               "(?token=..., Authorization: Bearer ..., or cookie)",
                                    extra=[(b"www-authenticate", b'Bearer realm="runyard"')])
            set_cookie = source == "query"

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                extra = list(SECURITY_HEADERS)
                if set_cookie:
                    extra.append((b"set-cookie", f"{COOKIE}={self.cookie_value}; Path=/; HttpOnly; "
                                                 "SameSite=Strict".encode()))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _presented_token(scope: Scope, headers: dict[str, str]) -> tuple[str | None, str]:
    """(value, where from: "header", "query", "cookie" or "none")."""
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip(), "header"
    if "x-runyard-token" in headers:
        return headers["x-runyard-token"], "header"
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("token"):
        return query["token"][0], "query"
    cookie = SimpleCookie()
    try:
        cookie.load(headers.get("cookie", ""))
    except Exception:  # noqa: BLE001 - a malformed cookie header is just "no token"
        return None, "none"
    return (cookie[COOKIE].value, "cookie") if COOKIE in cookie else (None, "none")


async def _plain(send: Send, status: int, text: str, extra: list | None = None) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), *SECURITY_HEADERS,
                            *(extra or [])]})
    await send({"type": "http.response.body", "body": body})
