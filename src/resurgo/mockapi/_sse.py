"""Messages API answers: the SSE event sequence and the non-streaming JSON.

Text is split into several deltas and tool input into several
``input_json_delta`` fragments, as the real API does, so that ``event_delay``
makes a long stream and ``cut_after`` can cut inside a content block.
"""

from __future__ import annotations

import json
from typing import Any

from resurgo.mockapi._ids import message_id
from resurgo.mockapi._script import Reply


def _chunks(s: str, n: int) -> list[str]:
    if not s:
        return [""]
    size = max(1, -(-len(s) // n))
    return [s[i : i + size] for i in range(0, len(s), size)]


def message_json(reply: Reply, *, model: str, input_tokens: int, output_tokens: int) -> dict[str, Any]:
    """The non-streaming answer body."""
    return {
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": reply.content,
        "stop_reason": reply.stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens,
            "service_tier": "standard",
        },
    }


def sse_events(reply: Reply, *, model: str, input_tokens: int, output_tokens: int) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) pairs of a streamed answer, message_start to message_stop."""
    msg = message_json(reply, model=model, input_tokens=input_tokens, output_tokens=1)
    msg["content"] = []
    msg["stop_reason"] = None
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": msg})]
    for i, block in enumerate(reply.content):
        if block["type"] == "text":
            events.append(
                (
                    "content_block_start",
                    {"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}},
                )
            )
            if i == 0:
                events.append(("ping", {"type": "ping"}))
            for part in _chunks(block["text"], 3):
                events.append(
                    (
                        "content_block_delta",
                        {"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": part}},
                    )
                )
        elif block["type"] == "tool_use":
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            events.append(("content_block_start", {"type": "content_block_start", "index": i, "content_block": start}))
            for part in _chunks(json.dumps(block["input"]), 3):
                events.append(
                    (
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": i,
                            "delta": {"type": "input_json_delta", "partial_json": part},
                        },
                    )
                )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": reply.stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def encode_event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
