"""Credential redaction for anything that may print a stream URL.

Stream URLs carry ``user:password@`` and sometimes ``?token=`` parameters.
Everything that leaves the process (logs, events, metrics, API responses)
goes through :func:`redact_url` or :func:`redact_text`.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_SECRET_PARAMS = frozenset(
    {"password", "passwd", "pwd", "pass", "token", "access_token", "auth", "key", "secret", "signature"}
)
# scheme://user:pass@host or scheme://user@host anywhere in free text
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")
_QUERY_SECRET = re.compile(
    r"(?P<name>[?&](?:" + "|".join(sorted(_SECRET_PARAMS)) + r"))=(?P<value>[^&\s#]+)", re.IGNORECASE
)
MASK = "***"


def redact_url(url: str) -> str:
    """The URL with its user-info and secret query parameters masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Mask every credential-looking URL fragment inside free text (error messages, tracebacks)."""
    text = _USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m.group('name')}={MASK}", text)
