# ruff: noqa: E501 - quoted error strings are data and stay on one line each
"""Source of tests/corpus/documented.jsonl: error strings quoted in public Claude Code issue
threads (each line cites its thread) plus non-error observations shaped as the CLI facts
spec documents them.  Run ``python tests/corpus/_documented_src.py`` to rewrite the JSONL.

Request ids and user paths are kept as quoted (they are part of what the classifier must
cope with); API keys never appear.  Labels follow shared/spec/error-taxonomy.md.
"""

from __future__ import annotations

import json
from pathlib import Path

CC = "https://github.com/anthropics/claude-code/issues/"
FACTS = "shared/spec/claude-cli-facts.md"


def err(id_: str, source: str, obs: dict, typ: str, retryable: bool) -> dict:
    return {
        "id": id_,
        "source": source,
        "observation": obs,
        "expect": {"error": True, "type": typ, "retryable": retryable},
    }


def ok(id_: str, source: str, obs: dict) -> dict:
    return {
        "id": id_,
        "source": source,
        "observation": obs,
        "expect": {"error": False, "type": None, "retryable": None},
    }


def result(
    text: str,
    *,
    is_error: bool = True,
    status: int | None = None,
    subtype: str = "success",
    errors: list[str] | None = None,
) -> list[dict]:
    ev = {
        "type": "result",
        "subtype": subtype,
        "is_error": is_error,
        "api_error_status": status,
        "result": text,
        "session_id": "0b5c6a1e-2f57-4c55-9f0e-6d0d8e0b8a11",
        "num_turns": 1,
    }
    if errors is not None:
        ev["errors"] = errors
    return [{"type": "system", "subtype": "init", "session_id": ev["session_id"]}, ev]


LINES = [
    # ---- resource: usage limits (retryable, reset time) -----------------------------------
    err(
        "usage-limit-epoch-6119", CC + "6119", {"message": "Claude AI usage limit reached|1755615600"}, "resource", True
    ),
    err(
        "usage-limit-epoch-2490", CC + "2490", {"message": "Claude AI usage limit reached|1750708800"}, "resource", True
    ),
    err(
        "usage-limit-epoch-4375",
        CC + "4375",
        {"message": "Claude AI usage limit reached|1753441200", "exit_code": 1},
        "resource",
        True,
    ),
    err(
        "usage-limit-warsaw-6119",
        CC + "6119",
        {"message": "Claude usage limit reached. Your limit will reset at 5pm (Europe/Warsaw)."},
        "resource",
        True,
    ),
    err(
        "usage-limit-bogota-2490",
        CC + "2490",
        {"message": "Claude usage limit reached. Your limit will reset at 3pm (America/Bogota)."},
        "resource",
        True,
    ),
    err(
        "session-limit-calcutta-24511",
        CC + "24511",
        {"message": "You've hit your limit · resets 3:30am (Asia/Calcutta)"},
        "resource",
        True,
    ),
    err(
        "session-limit-dhaka-54698",
        CC + "54698",
        {"message": "You've hit your limit · resets 1:30am (Asia/Dhaka)"},
        "resource",
        True,
    ),
    err(
        "session-limit-seoul-22976",
        CC + "22976",
        {
            "message": "You've hit your limit - resets Feb 7, 11am (Asia/Seoul)/login to switch to an API usage-billed account."
        },
        "resource",
        True,
    ),
    err(
        "limit-claude-messages-80062",
        CC + "80062",
        {
            "message": "You’ve hit your limit for Claude messages. Limits will reset at 9:30 AM.  View your usage details."
        },
        "resource",
        True,
    ),
    err("usage-limit-reached-51442", CC + "51442", {"message": "Usage limit reached"}, "resource", True),
    err(
        "rate-limit-429-54698",
        CC + "54698",
        {
            "message": 'Error: 429 {"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed your account\'s rate limit. Please try again later."},"request_id":"req_011CaYFzoBjAUaBYZZjpJHee"}'
        },
        "resource",
        True,
    ),
    # ---- resource: overload (retryable) ---------------------------------------------------
    err(
        "overloaded-529-39745",
        CC + "39745",
        {
            "message": 'API Error: 529 {"type":"error","error":{"type":"overloaded_error","message":"Overloaded.\nhttps://docs.claude.com/en/api/errors"},"request_id":"req_011CZTEFvft13DajMTp9pp64"}'
        },
        "resource",
        True,
    ),
    err(
        "overloaded-529-67531",
        CC + "67531",
        {
            "message": "API Error: 529 Overloaded. This is a server-side issue, usually temporary — try again in a moment. If it persists, check https://status.claude.com."
        },
        "resource",
        True,
    ),
    err(
        "overloaded-529-12401",
        CC + "12401",
        {
            "message": 'API Error: 529 {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":null}'
        },
        "resource",
        True,
    ),
    err(
        "overloaded-529-result-81327",
        CC + "81327",
        {
            "exit_code": 1,
            "events": result(
                "API Error: 529 Overloaded. This is a server-side issue, usually temporary — try again in a moment. If it persists, check https://status.claude.com.",
                status=529,
            ),
        },
        "resource",
        True,
    ),
    err(
        "overloaded-retrying-7218",
        CC + "7218",
        {
            "message": 'API Error (529 {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":null}) · Retrying in 4 seconds… (attempt 4/10)'
        },
        "resource",
        True,
    ),
    err(
        "overloaded-repeated-529",
        "https://github.com/lbjlaq/Antigravity-Manager/issues/112",
        {"message": "API Error: Repeated 529 Overloaded errors"},
        "resource",
        True,
    ),
    err(
        "overloaded-bare-35685",
        CC + "35685",
        {
            "message": '529 {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011CZA4n6fWRp57Nz63oU5nn"}'
        },
        "resource",
        True,
    ),
    # ---- resource: billing (not retryable) ------------------------------------------------
    err("credit-low-55469", CC + "55469", {"message": "Credit balance is too low"}, "resource", False),
    err(
        "credit-low-add-funds-46277",
        CC + "46277",
        {"message": "Credit balance too low · Add funds: https://platform.claude.com/settings/billing"},
        "resource",
        False,
    ),
    err(
        "credit-low-400-867",
        CC + "867",
        {
            "message": 'Error: 400 {"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."}}'
        },
        "resource",
        False,
    ),
    err(
        "credit-low-result-85675",
        CC + "85675",
        {"exit_code": 1, "events": result("Credit balance is too low", status=400)},
        "resource",
        False,
    ),
    # ---- resource: local memory (retryable after cleanup) ---------------------------------
    err(
        "heap-oom-2167",
        CC + "2167",
        {
            "exit_code": 134,
            "stderr": "<--- JS stacktrace --->\n\nFATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory\n 1: 0x79cb6660633c node::Abort() [/lib/x86_64-linux-gnu/libnode.so.109]",
        },
        "process",
        True,
    ),
    err(
        "heap-oom-10296",
        CC + "10296",
        {
            "stderr": "FATAL ERROR: Ineffective mark-compacts near heap limit Allocation failed - JavaScript heap out of memory",
            "signal": 6,
        },
        "process",
        True,
    ),
    err(
        "heap-oom-24938",
        CC + "24938",
        {
            "stderr": "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory\n----- Native stack trace -----\n\n 1: 0x7a0ebb node::OOMErrorHandler(char const*, v8::OOMDetails const&) [claude]\nAborted (core dumped)",
            "exit_code": 134,
        },
        "process",
        True,
    ),
    err(
        "heap-oom-message-952",
        CC + "952",
        {"message": "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory"},
        "resource",
        True,
    ),
    # (a process that died of it also has a signal or exit status; the spec ranks how the
    # process ended above message patterns, so those are labelled process, retryable)
    # ---- auth (not retryable) -------------------------------------------------------------
    err(
        "oauth-expired-6459",
        CC + "6459",
        {
            "message": 'API Error: 401 {"type":"error","error":{"type":"authentication_error","message":"OAuth token has expired. Please obtain a new token or refresh your existing token."},"request_id":"req_011CSSdA5fqJCVm1m4XMjNks"}'
        },
        "auth",
        False,
    ),
    err(
        "oauth-expired-44729",
        CC + "44729",
        {
            "message": "API Error: 401 — OAuth token has expired. Please obtain a new token or refresh your existing token."
        },
        "auth",
        False,
    ),
    err(
        "oauth-expired-result-paperclip",
        "https://github.com/paperclipai/paperclip/issues/139",
        {
            "exit_code": 1,
            "events": result(
                'Failed to authenticate. API Error: 401 {"type":"error","error":{"type":"authentication_error","message":"OAuth token has expired. Please obtain a new token or refresh your existing token."},"request_id":"req_011CYn6NGKAUEBEW5LYfdv5M"}',
                status=401,
            ),
        },
        "auth",
        False,
    ),
    err("invalid-api-key-6270", CC + "6270", {"message": "Invalid API key · Please run /login"}, "auth", False),
    err("missing-api-key-6893", CC + "6893", {"message": "Missing API key · Run /login"}, "auth", False),
    err(
        "invalid-x-api-key-9694",
        CC + "9694",
        {
            "message": 'Error: 401 {"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"},"request_id":"req_011CUBgWE2fdbDGiPKTUQTwy"}'
        },
        "auth",
        False,
    ),
    err(
        "org-disabled-19028",
        CC + "19028",
        {
            "message": 'API Error: 400 {"type":"error","error":{"type":"invalid_request_error","message":"This organization has been disabled."},"request_id":"req_011CXF1SZ3S3oXChsdxhoUwV"}'
        },
        "auth",
        False,
    ),
    err(
        "org-disabled-result-60648",
        CC + "60648",
        {"exit_code": 1, "events": result("API Error: 400 This organization has been disabled.", status=400)},
        "auth",
        False,
    ),
    err(
        "org-disabled-subscription-62722",
        CC + "62722",
        {
            "message": "Your organization has disabled Claude subscription access for Claude Code · Use an Anthropic API key instead, or ask your admin to enable access"
        },
        "auth",
        False,
    ),
    err(
        "web-session-auth-55469",
        CC + "55469",
        {
            "message": "Error: Claude Code web sessions require authentication with a Claude.ai account. API key authentication is not sufficient. Please run /login to authenticate, or check your authentication status with /status."
        },
        "auth",
        False,
    ),
    # ---- validation (not retryable) -------------------------------------------------------
    err(
        "orphan-tool-use-5705",
        CC + "5705",
        {
            "message": 'API Error: 400 {"type":"error","error":{"type":"invalid_request_error","message":"messages.21: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_019MgEXFFrY5MHhv9PqJDRQe. Each `tool_use` block must have a corresponding `tool_result` block in the next message."}}'
        },
        "validation",
        False,
    ),
    err(
        "orphan-tool-use-result-7796",
        CC + "7796",
        {
            "exit_code": 1,
            "events": result(
                'API Error: 400 {"type":"error","error":{"type":"invalid_request_error","message":"messages.12: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_0164dj1VZiRHAsW2rXJugiC2,\n     toolu_01HJPPbn2Qen3x7Lbsn9P2fs. Each `tool_use` block must have a corresponding `tool_result` block in the next message."},"request_id":"req_011CTEptkseLGvehVa6L8DnU"}',
                status=400,
            ),
        },
        "validation",
        False,
    ),
    err(
        "prompt-too-long-7866",
        CC + "7866",
        {
            "message": 'Error: 400 {"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 216327 tokens > 200000 maximum"},"request_id":"req_011CTHk1mwGUHsoh8MJuB6fJ"}'
        },
        "validation",
        False,
    ),
    err(
        "prompt-too-long-kodu",
        "https://github.com/kodu-ai/claude-coder/issues/64",
        {
            "http_status": 400,
            "message": '400 {"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210883 tokens > 199999 maximum"}}',
        },
        "validation",
        False,
    ),
    err(
        "no-conversation-62851",
        CC + "62851",
        {
            "exit_code": 1,
            "events": result(
                "",
                subtype="error_during_execution",
                errors=["No conversation found with session ID: 35814092-99b2-4a66-99e1-1dc2cbd7fc10"],
            ),
        },
        "validation",
        False,
    ),
    err(
        "no-conversation-42681",
        CC + "42681",
        {"message": "No conversation found with session ID: 298cfbfa-*****-****-****", "exit_code": 1},
        "validation",
        False,
    ),
    err(
        "session-id-with-resume",
        "https://github.com/theNetworkChuck/n8n-claude-code-guide/issues/1",
        {"stderr": "Error: --session-id cannot be used with --continue or --resume.", "exit_code": 1},
        "validation",
        False,
    ),
    err(
        "invalid-json-surrogate-4536",
        CC + "4536",
        {
            "message": 'API Error: 400 {"type":"error","error":{"type":"invalid_request_error","message":"The request body is not valid JSON: invalid high surrogate in string: line 1 column 238422 (char 238421)"}}'
        },
        "validation",
        False,
    ),
    err(
        "content-filter-38737",
        CC + "38737",
        {
            "message": 'API Error: 400 {"type":"error","error":{"type":"invalid_request_error","message":"Output blocked      by content filtering policy"},"request_id":"req_011CZPmqiwEeMGypdajPk47w"}'
        },
        "validation",
        False,
    ),
    err(
        "extra-inputs-12122",
        CC + "12122",
        {
            "message": 'API Error: 400 {"error":{"message":"{\\"message\\":\\"messages.0.content.3.text.cache_control.ephemeral.ttl: Extra inputs are not permitted\\"}. Received \n    Model Group=claude-sonnet-4-5\\nAvailable Model Group Fallbacks=None","type":"None","param":"None","code":"400"}}'
        },
        "validation",
        False,
    ),
    err("unknown-option-facts", FACTS, {"stderr": "error: unknown option '--x'", "exit_code": 1}, "validation", False),
    err(
        "invalid-session-id-facts",
        FACTS,
        {"stderr": "Error: Invalid session ID. Must be a valid UUID.", "exit_code": 1},
        "validation",
        False,
    ),
    # ---- network (retryable) --------------------------------------------------------------
    err(
        "econnreset-42949",
        CC + "42949",
        {"message": "API Error: Unable to connect to API (ECONNRESET)"},
        "network",
        True,
    ),
    err(
        "econnreset-result-66758",
        CC + "66758",
        {"exit_code": 1, "events": result("API Error: Unable to connect to API (ECONNRESET)")},
        "network",
        True,
    ),
    err(
        "econnreset-57222",
        CC + "57222",
        {"message": "Failed to connect to api.anthropic.com: ECONNRESET"},
        "network",
        True,
    ),
    err(
        "connection-error-6596",
        CC + "6596",
        {
            "message": "API Error (Connection error.) · Retrying in 1 seconds… (attempt 1/10)\n    ⎿  TypeError (fetch failed)"
        },
        "network",
        True,
    ),
    err(
        "socket-closed-56711",
        CC + "56711",
        {
            "message": "OAuth error: The socket connection was closed unexpectedly. For more information, pass `verbose: true` in the second argument to fetch()"
        },
        "network",
        True,
    ),
    err(
        "epipe-tls-13458",
        CC + "13458",
        {
            "exit_code": 1,
            "stderr": "node:events:486\n      throw er; // Unhandled 'error' event\n      ^\n\nError: write EPIPE\n    at WriteWrap.onWriteComplete [as oncomplete] (node:internal/stream_base_commons:87:19)\nEmitted 'error' event on TLSSocket instance at:\n    at emitErrorNT (node:internal/streams/destroy:170:8)\n{\n  errno: -32,\n  code: 'EPIPE',\n  syscall: 'write'\n}\n\nNode.js v24.7.0",
        },
        "network",
        True,
    ),
    err(
        "epipe-socket-3917",
        CC + "3917",
        {
            "exit_code": 1,
            "stderr": "Error: write EPIPE\n    at WriteWrap.onWriteComplete [as oncomplete] (node:internal/stream_base_commons:87:19)\nEmitted 'error' event on Socket instance at:\n    at emitErrorNT (node:internal/streams/destroy:170:8)",
        },
        "network",
        True,
    ),
    err(
        "bad-gateway-3919",
        CC + "3919",
        {
            "message": "API Error (502 <html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n<center><h1>502 Bad Gateway</h1></center>\n<hr><center>cloudflare</center>\n</body>\n</html>\n) · Retrying in 38 seconds… (attempt 9/10)"
        },
        "network",
        True,
    ),
    err(
        "refused-facts",
        FACTS,
        {"exit_code": 1, "events": result("API Error: Unable to connect to API (ConnectionRefused)")},
        "network",
        True,
    ),
    err(
        "failed-to-open-socket-facts",
        FACTS,
        {"exit_code": 1, "events": result("API Error: Unable to connect to API (FailedToOpenSocket)")},
        "network",
        True,
    ),
    # ---- timeout (retryable) --------------------------------------------------------------
    err("timeout-3602", CC + "3602", {"message": "API Error: Request timed out."}, "timeout", True),
    err(
        "timeout-retrying-4699",
        CC + "4699",
        {"message": "API Error (Request timed out.) · Retrying in 1 seconds… (attempt 2/10)"},
        "timeout",
        True,
    ),
    err(
        "timeout-result-facts",
        FACTS,
        {"exit_code": 1, "events": result("API Error: Request timed out.")},
        "timeout",
        True,
    ),
    err(
        "timeout-operation-cc-switch",
        "https://github.com/farion1231/cc-switch/issues/5831",
        {"message": "API Error：The operation timed out"},
        "timeout",
        True,
    ),
    # ---- internal (remote: retryable) -----------------------------------------------------
    err(
        "api-500-overloaded-3602",
        CC + "3602",
        {"message": 'API Error: 500 {"type":"error","error":{"type":"api_error","message":"Overloaded"}}'},
        "internal",
        True,
    ),
    # ---- process --------------------------------------------------------------------------
    err(
        "segv-facts",
        FACTS,
        {
            "signal": 11,
            "stderr": "panic(main thread): Segmentation fault at address 0x0\noh no: Bun has crashed. This indicates a bug in Bun, not your code.",
        },
        "process",
        True,
    ),
    err(
        "missing-binary-facts", FACTS, {"exit_code": 127, "stderr": "bash: claude: command not found"}, "process", False
    ),
    # ---- not errors -----------------------------------------------------------------------
    ok("ok-result-success", FACTS, {"exit_code": 0, "events": result("Hello! How can I help?", is_error=False)}),
    ok("ok-result-no-exit", FACTS, {"events": result("4", is_error=False)}),
    ok(
        "ok-exit0-warning-npm",
        FACTS,
        {
            "exit_code": 0,
            "stderr": "npm warn deprecated inflight@1.0.6: This module is not supported, and leaks memory.",
        },
    ),
    ok(
        "ok-exit0-auth-conflict-warning",
        "https://github.com/lbjlaq/Antigravity-Manager/issues/112",
        {
            "exit_code": 0,
            "stderr": "⚠Auth conflict: Using ANTHROPIC_API_KEY instead of Anthropic Console key. Either unset ANTHROPIC_API_KEY, or run `claude /logout`.",
        },
    ),
    ok(
        "ok-exit0-nonfatal-lock",
        CC + "52886",
        {
            "exit_code": 0,
            "stderr": "Error: NON-FATAL: Lock acquisition failed for /home/user/.local/share/claude/versions/2.1.119 (expected in multi-process scenarios)",
        },
    ),
    ok(
        "ok-result-after-api-retry",
        FACTS,
        {
            "exit_code": 0,
            "events": [
                {
                    "type": "system",
                    "subtype": "api_retry",
                    "attempt": 1,
                    "max_retries": 10,
                    "retry_delay_ms": 1000,
                    "error_status": 529,
                    "error": "overloaded_error",
                },
                *result("done", is_error=False),
            ],
        },
    ),
    ok(
        "ok-result-text-mentions-error",
        FACTS,
        {
            "exit_code": 0,
            "events": result("I fixed the 'API Error: 500' handling and the timeout bug in retry.py.", is_error=False),
        },
    ),
    ok("ok-killed-shutdown", "shared/spec/error-taxonomy.md", {"killed_by": "shutdown", "signal": 15}),
    ok("ok-killed-user", "shared/spec/error-taxonomy.md", {"killed_by": "user", "signal": 2, "exit_code": None}),
    ok("ok-exit0-plain", FACTS, {"exit_code": 0}),
    ok(
        "ok-exit0-stderr-deprecation",
        FACTS,
        {"exit_code": 0, "stderr": "(node:1234) [DEP0040] DeprecationWarning: The `punycode` module is deprecated."},
    ),
    ok(
        "ok-result-tool-use",
        FACTS,
        {
            "exit_code": 0,
            "events": [
                {
                    "type": "assistant",
                    "message": {
                        "model": "claude-sonnet-4-5",
                        "content": [{"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {"command": "ls"}}],
                    },
                },
                {
                    "type": "user",
                    "message": {
                        "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "README.md"}]
                    },
                },
                *result("The directory has a README.", is_error=False),
            ],
        },
    ),
    ok(
        "ok-rate-limit-event-then-success",
        FACTS,
        {
            "exit_code": 0,
            "events": [
                {"type": "rate_limit_event", "rate_limit_info": {"status": "allowed_warning", "resetsAt": 1750708800}},
                *result("ok", is_error=False),
            ],
        },
    ),
    ok(
        "ok-exit0-warning-update",
        FACTS,
        {"exit_code": 0, "stderr": "Warning: Claude Code auto-update failed; continuing with 2.1.197"},
    ),
    ok(
        "ok-result-mentions-rate-limit",
        FACTS,
        {"events": result("Added a rate limit of 429-style backoff to the client.", is_error=False)},
    ),
    ok("ok-exit0-empty-stderr", FACTS, {"exit_code": 0, "stderr": ""}),
]

if __name__ == "__main__":
    out = Path(__file__).with_name("documented.jsonl")
    with out.open("w", encoding="utf-8") as fh:
        for line in LINES:
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    print(f"wrote {len(LINES)} lines to {out}")
