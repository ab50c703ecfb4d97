"""URL helpers shared by the repository, the jobs and the CLI: scheme lookup and password redaction.

A redacted URL is safe to print and to store in a manifest: ``user:secret@host`` becomes ``user@host``.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

SECRET_QUERY_KEYS = frozenset({"password", "passwd", "pwd", "pass", "secret", "token", "sslpassword", "key"})
"""Query parameters dropped by ``redact_url``."""


def url_scheme(url: str) -> str | None:
    """The scheme of ``scheme://...`` (lower-cased), or None when ``url`` has none."""
    if "://" not in url:
        return None
    scheme = url.split("://", 1)[0].lower()
    return scheme or None


def redact_url(url: str) -> str:
    """``url`` without a password in its user info or secret-looking query parameters."""
    if "://" not in url:
        return url
    scheme = url.split("://", 1)[0]
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"{scheme}://<unparseable>"  # keep nothing that could be secret
    changed = False
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}@{host}" if user else host
            changed = True
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = [(k, v) for k, v in pairs if k.lower() not in SECRET_QUERY_KEYS]
        if len(kept) != len(pairs):
            query = urlencode(kept)
            changed = True
    if not changed:
        return url
    path = parts.path
    tail = (f"?{query}" if query else "") + (f"#{parts.fragment}" if parts.fragment else "")
    return f"{parts.scheme}://{netloc}{path}{tail}"
