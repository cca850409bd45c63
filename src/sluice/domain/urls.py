"""Broker and result-backend URLs: the checks a stored one passes, and its shape without its
secrets (what the API, the CLI and the logs show)."""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import parse_qsl, urlencode

MAX_URL_LEN: Final = 2048
MASK: Final = "***"
# scheme://, the form Celery and kombu take (a sentinel list repeats it after ';')
_SCHEME_RE: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
# the password of each `scheme://user:password@host` part
_PASSWORD_RE: Final = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@;?#\s]*:)"
                                 r"(?P<password>[^@;\s]*)(?=@)")
_SENSITIVE_PARAM_RE: Final = re.compile(r"pass|secret|token|key|credential|auth", re.IGNORECASE)


def check_url(url: str) -> str | None:
    """Why this cannot be a broker or result backend URL (None: it can). The reason never
    quotes the URL: it may hold a password."""
    if not url or len(url) > MAX_URL_LEN:
        return f"must be a URL of 1 to {MAX_URL_LEN} characters"
    if any(c.isspace() or c == "\x00" for c in url):
        return "must not contain whitespace or NUL characters"
    if not _SCHEME_RE.match(url):
        return "must start with a scheme such as redis:// or amqp://"
    return None


def redact_url(url: str | None) -> str | None:
    """The URL with every password (and every query parameter that looks like a secret)
    replaced by ***; None stays None."""
    if url is None:
        return None
    out = _PASSWORD_RE.sub(lambda m: m.group("head") + MASK, url)
    base, sep, query = out.partition("?")
    if sep and query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SENSITIVE_PARAM_RE.search(k) for k, _ in pairs):
            masked = [(k, MASK if _SENSITIVE_PARAM_RE.search(k) else v) for k, v in pairs]
            out = base + "?" + urlencode(masked, safe="*")
    return out


def secrets_of(url: str | None) -> list[str]:
    """The secret parts of a URL (passwords, secret-looking parameters), to scrub them from
    any text that might quote it (an error message from a client library)."""
    if not url:
        return []
    found = [m.group("password") for m in _PASSWORD_RE.finditer(url) if m.group("password")]
    _, sep, query = url.partition("?")
    if sep:
        found += [v for k, v in parse_qsl(query, keep_blank_values=True)
                  if _SENSITIVE_PARAM_RE.search(k) and v]
    return found


def scrub(text: str, *urls: str | None) -> str:
    """`text` with each URL, and each of its secrets, redacted."""
    for url in urls:
        if not url:
            continue
        redacted = redact_url(url) or ""
        text = text.replace(url, redacted)
        for secret in sorted(secrets_of(url), key=len, reverse=True):
            if len(secret) >= 3:  # shorter ones would mask unrelated characters
                text = text.replace(secret, MASK)
    return text
