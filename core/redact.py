"""Credential redaction for anything that may print a stream URL.

Stream URLs carry ``user:password@`` and sometimes ``?token=`` parameters.
Everything that leaves the process (logs, events, metrics, API responses,
dead letters) goes through :func:`redact_url` or :func:`redact_text`.

Why not ``urllib.parse``: a password may hold ``@ / # ?`` or a space without
being percent-encoded (typed by hand into a YAML file, echoed by a library in
an error message). A URL parser then splits the password into path, query or
fragment and prints half of it. So the rule here is deliberately greedy: after
``scheme://``, everything up to the *last* ``@`` before the end of the line,
a quote or the next ``scheme://`` (within :data:`USERINFO_WINDOW` characters)
is user-info and is masked. Masking a host name by mistake costs a little
diagnosis; printing a password costs the camera.

The scan is linear in the text: each ``://`` looks back at most 32 characters
for its scheme and forward at most :data:`USERINFO_WINDOW` characters, so a
megabyte-long hostile record cannot make redaction quadratic.
"""

from __future__ import annotations

import re

MASK = "***"
USERINFO_WINDOW = 512
"""How far after ``://`` an ``@`` still counts as the end of user-info."""

_SECRET_WORDS = (  # names of secret parameters, not a secret
    "password|passwd|pwd|pass|passphrase|token|auth|authorization|key|apikey|secret|signature|sig"  # noqa: S105
    "|credential|credentials|session|sessionid|sid"
)
# A query / fragment parameter whose name is a secret word, or ends in one after _ . or - (api_key,
# X-Amz-Signature, access_token, client-secret); its value runs to the next & ; # or whitespace.
_QUERY_SECRET = re.compile(
    r"(?P<name>[?&;#](?:[A-Za-z0-9]+[_.-])*(?:" + _SECRET_WORDS + r"))=(?P<value>[^&;#\s\"'<>]+)",
    re.IGNORECASE,
)
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
_URL_END = re.compile(r"[\r\n\"'<>`]")


def redact_url(url: str) -> str:
    """The URL with its user-info and secret query parameters masked."""
    return redact_text(url)


def redact_text(text: str) -> str:
    """Mask every credential-looking URL fragment inside free text (error messages, tracebacks, records)."""
    if "://" in text:
        text = _mask_userinfo(text)
    if "=" in text:
        text = _QUERY_SECRET.sub(lambda m: f"{m.group('name')}={MASK}", text)
    return text


def _mask_userinfo(text: str) -> str:
    out: list[str] = []
    pos = 0  # text before pos is already in out
    sep = text.find("://")
    while sep >= 0:
        start = sep + 3
        nxt = text.find("://", start)
        if sep > 0 and text[sep - 1] in _SCHEME_CHARS and start >= pos:
            limit = min(start + USERINFO_WINDOW, len(text) if nxt < 0 else nxt)
            end = _URL_END.search(text, start, limit)
            at = text.rfind("@", start, limit if end is None else end.start())
            if at >= 0:
                out.append(text[pos:start])
                out.append(MASK)
                pos = at  # keep the "@"
        sep = nxt
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)
