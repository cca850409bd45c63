"""Security headers on every response (pages, API, errors, static files, the API docs).

The policy allows scripts, styles, images and connections from this server only: no inline
script anywhere (the dashboard and the docs page load their start-up from files), no frames
of Sluice in other sites, no referrer leaving the site. The docs page (Redoc) sets its styles
from script at run time, so its pages alone also allow inline styles; never inline script.
"""

from __future__ import annotations

from typing import Final

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

DOCS_PREFIX: Final = "/schema"
_BASE: Final = ("default-src 'self'; script-src 'self'; img-src 'self' data:; "
                "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
                "form-action 'self'; frame-ancestors 'none'; worker-src 'self' blob:")
CSP: Final = _BASE + "; style-src 'self'"
DOCS_CSP: Final = _BASE + "; style-src 'self' 'unsafe-inline'"
HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
HSTS: Final = "max-age=31536000"


def _https(scope: Scope) -> bool:
    if scope.get("scheme") == "https":
        return True
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-proto":
            return value.split(b",")[0].strip().lower() == b"https"
    return False


async def add_security_headers(message: Message, scope: Scope) -> None:
    """Litestar `before_send` hook: it sees every response the app sends, routed or not."""
    if message["type"] != "http.response.start":
        return
    headers = MutableScopeHeaders.from_message(message)
    path = str(scope.get("path", ""))
    docs = path == DOCS_PREFIX or path.startswith(DOCS_PREFIX + "/")
    headers["Content-Security-Policy"] = DOCS_CSP if docs else CSP
    for name, value in HEADERS.items():
        headers[name] = value
    if _https(scope):
        headers["Strict-Transport-Security"] = HSTS
