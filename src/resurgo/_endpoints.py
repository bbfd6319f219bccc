"""The name an API endpoint goes by in breaker names, metrics labels, health rows and the store.

``ANTHROPIC_BASE_URL`` may carry credentials (``https://user:key@gateway/``,
``...?key=...``, a token in the path).  A breaker's name ends up in the
store, in Prometheus labels, on the dashboard and in log lines, so an
endpoint is named by :func:`resurgo._redact.redact_url` (scheme, host and
port; a path or query shown as ``<redacted>``), never by the URL itself.

Two endpoints that differ only in what redaction removed (two paths on one
gateway) must still get two breakers and two series, and every worker of a
fleet must derive the same name for the same URL; so when redaction removed
something, the name ends with ``#`` and 8 hex digits of the URL's SHA-256.
That digest cannot be turned back into the URL, but it does let someone who
already knows everything else about the URL confirm a guess of the removed
part: keep credentials in ``ANTHROPIC_API_KEY``/``ANTHROPIC_AUTH_TOKEN``, not
in the URL, when that matters.
"""

from __future__ import annotations

import hashlib

from resurgo._redact import redact_url

__all__ = ["endpoint_name"]


def endpoint_name(url: str) -> str:
    """``https://api.anthropic.com``, or ``https://gw.example/<redacted>#1a2b3c4d`` (see the module docstring)."""
    text = str(url).strip()
    shown = redact_url(text)
    if shown == text.rstrip("/"):
        return shown
    return f"{shown}#{hashlib.sha256(text.encode('utf-8', 'replace')).hexdigest()[:8]}"
