"""Error responses shaped like the real Messages API's.

The CLI (and the classifier downstream) key on the status, the ``error.type``
and a few headers, so each status gets the body type and headers the real API
documents for it; messages are close to the real ones so message patterns can
be exercised too.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from resurgo.mockapi._ids import request_id

# status -> (error.type, message, reason phrase)
_ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("invalid_request_error", "Invalid request: the request could not be processed.", "Bad Request"),
    401: ("authentication_error", "invalid x-api-key", "Unauthorized"),
    402: (
        "billing_error",
        "Your credit balance is too low to access the Anthropic API. "
        "Please go to Plans & Billing to upgrade or purchase credits.",
        "Payment Required",
    ),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
        "Forbidden",
    ),
    404: ("not_found_error", "Not found", "Not Found"),
    408: ("timeout_error", "Request timeout", "Request Timeout"),
    409: ("conflict_error", "Conflict", "Conflict"),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes.", "Payload Too Large"),
    422: ("invalid_request_error", "Unprocessable entity", "Unprocessable Entity"),
    429: (
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per "
        "minute. For details, refer to: https://docs.claude.com/en/api/rate-limits.",
        "Too Many Requests",
    ),
    500: ("api_error", "Internal server error", "Internal Server Error"),
    502: ("api_error", "Bad gateway", "Bad Gateway"),
    503: ("api_error", "Service unavailable", "Service Unavailable"),
    504: ("timeout_error", "Request timeout", "Gateway Timeout"),
    529: ("overloaded_error", "Overloaded", "Overloaded"),
}

#: statuses after which the real API tells SDKs it is worth retrying
_SHOULD_RETRY = {408, 409, 429, 500, 502, 503, 504, 529}


def reason_phrase(status: int) -> str:
    """Reason phrase for the status line (non-standard 529 included)."""
    if status in _ERRORS:
        return _ERRORS[status][2]
    return {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}.get(status, "Error")


def error_type_for(status: int) -> str:
    """``error.type`` the real API uses for a status; unknown 4xx fall back as it documents."""
    if status in _ERRORS:
        return _ERRORS[status][0]
    return "invalid_request_error" if status < 500 else "api_error"


def error_response(
    status: int,
    *,
    message: str | None = None,
    retry_after: float | None = None,
    now: float | None = None,
) -> tuple[dict[str, str], bytes]:
    """Headers and JSON body of an error answer for ``status``."""
    etype = error_type_for(status)
    msg = message if message is not None else _ERRORS.get(status, ("", "Error", ""))[1]
    rid = request_id()
    body = {"type": "error", "error": {"type": etype, "message": msg}, "request_id": rid}
    headers: dict[str, str] = {
        "content-type": "application/json",
        "request-id": rid,
        "anthropic-organization-id": "00000000-0000-4000-8000-000000000000",
    }
    if status in _SHOULD_RETRY:
        headers["x-should-retry"] = "true"
    elif 400 <= status < 500:
        headers["x-should-retry"] = "false"
    if status == 429 and retry_after is None:
        retry_after = 5.0
    if retry_after is not None and status in (429, 503, 529):
        secs = max(0, int(retry_after + 0.999))
        headers["retry-after"] = str(secs)
        if status == 429:
            t = datetime.fromtimestamp(now if now is not None else time.time(), UTC)
            reset = (t + timedelta(seconds=retry_after)).strftime("%Y-%m-%dT%H:%M:%SZ")
            for kind in ("requests", "tokens", "input-tokens", "output-tokens"):
                headers[f"anthropic-ratelimit-{kind}-limit"] = "50" if kind == "requests" else "40000"
                headers[f"anthropic-ratelimit-{kind}-remaining"] = "0"
                headers[f"anthropic-ratelimit-{kind}-reset"] = reset
    return headers, json.dumps(body).encode()
