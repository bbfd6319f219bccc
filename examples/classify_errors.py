"""Classify failures the way the supervisor does: exceptions, CLI results, HTTP answers.

Run: python examples/classify_errors.py
"""

from __future__ import annotations

import resurgo


def main() -> None:
    # 1. A Python exception: the cause chain is examined, the most specific evidence wins.
    try:
        try:
            raise ConnectionResetError(104, "Connection reset by peer")
        except ConnectionResetError as e:
            raise RuntimeError("fetching the page failed") from e
    except RuntimeError as err:
        ec = resurgo.classify(err)
        print("exception ->", ec.type, "retryable:", ec.retryable, "strategy:", ec.strategy)
        assert ec.type == "network" and ec.retryable

    # 2. What the Claude Code CLI printed: an API failure arrives as a result with is_error.
    observation = {
        "exit_code": 1,
        "events": [
            {
                "type": "result",
                "subtype": "success",
                "is_error": True,
                "api_error_status": 529,
                "result": "API Error: 529 Overloaded. This is a server-side issue, usually temporary.",
            }
        ],
    }
    ec = resurgo.classify(observation)
    print("cli 529 ->", ec.type, "retryable:", ec.retryable, "priority:", ec.priority)
    assert ec.type == "resource" and ec.retryable

    # 3. A rate limit with a reset time: retry_after says how long to wait (seconds).
    ec = resurgo.classify({"http_status": 429, "headers": {"retry-after": "30"}, "message": "rate_limit_error"})
    print("429 ->", ec.type, "retry_after:", ec.retry_after)
    assert ec.retry_after == 30

    # 4. Credentials: never retried, escalated.
    ec = resurgo.classify({"http_status": 401, "message": "Invalid API key"})
    print("401 ->", ec.type, "retryable:", ec.retryable, "strategy:", ec.strategy)
    assert ec.type == "auth" and not ec.retryable and not resurgo.is_retryable(ec)

    # The JSON form is the `resurgo classify` command's output line.
    print(ec.to_json())


if __name__ == "__main__":
    main()
