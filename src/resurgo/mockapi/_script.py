"""The scripted "model": answers derived from the prompt's directives.

Directives in a user message (anywhere in its text, several allowed)::

    [[bash: sleep 3; echo done]]   a Bash tool call with this command (one tool turn each)
    [[sleep: 2]]                   wait 2 s before the next answer (slow model)
    [[text: all good]]             the final text (default: a short summary)

The script is stateless on purpose: a CLI resumed with ``--resume`` sends the
whole conversation again, and a stand-in that kept state per connection or per
session would answer wrongly after a crash or a restart of the stand-in itself.
So the next step is derived from the history alone: every directive of every
user message, in order, minus the Bash calls that already have a
``tool_result``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from resurgo.mockapi._ids import TOOL_ID_PREFIX, tool_use_id

_DIRECTIVE = re.compile(r"\[\[\s*(bash|sleep|text)\s*:\s*(.*?)\s*\]\]", re.DOTALL | re.IGNORECASE)

#: Name of the shell tool in the CLI's tool list.
BASH_TOOL = "Bash"

DEFAULT_TEXT = "Done."


@dataclass(frozen=True)
class Directive:
    kind: str  # "bash" | "sleep" | "text"
    arg: str


@dataclass(frozen=True)
class Step:
    """One model answer: optionally a Bash call, else the final text."""

    delay: float
    command: str | None


@dataclass
class Reply:
    """What the stand-in answers to one Messages request."""

    content: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str = "end_turn"
    delay: float = 0.0
    step: int = 0


def parse_directives(text: str) -> list[Directive]:
    """Directives in ``text``, in order. Bad ``sleep`` values are ignored, not fatal."""
    out: list[Directive] = []
    for m in _DIRECTIVE.finditer(text):
        kind, arg = m.group(1).lower(), m.group(2)
        if kind == "sleep":
            try:
                float(arg)
            except ValueError:
                continue
        out.append(Directive(kind, arg))
    return out


def _user_texts(messages: Sequence[Mapping[str, Any]]) -> Iterable[str]:
    for msg in messages:
        if msg.get("role") != "user":
            continue
        content = msg.get("content")
        if isinstance(content, str):
            yield content
        elif isinstance(content, list):
            for block in content:
                if isinstance(block, Mapping) and block.get("type") == "text":
                    yield str(block.get("text", ""))


def plan(messages: Sequence[Mapping[str, Any]]) -> tuple[list[Step], str]:
    """Steps (Bash calls then the final answer) and the final text, from all user messages."""
    steps: list[Step] = []
    delay = 0.0
    final = DEFAULT_TEXT
    for text in _user_texts(messages):
        for d in parse_directives(text):
            if d.kind == "sleep":
                delay += float(d.arg)
            elif d.kind == "text":
                final = d.arg
            else:
                steps.append(Step(delay, d.arg))
                delay = 0.0
    steps.append(Step(delay, None))
    return steps, final


def completed_tool_calls(messages: Sequence[Mapping[str, Any]]) -> int:
    """How many Bash calls this stand-in issued that already have a ``tool_result``."""
    issued: set[str] = set()
    answered: set[str] = set()
    for msg in messages:
        content = msg.get("content")
        if not isinstance(content, list):
            continue
        for block in content:
            if not isinstance(block, Mapping):
                continue
            if (
                msg.get("role") == "assistant"
                and block.get("type") == "tool_use"
                and str(block.get("id", "")).startswith(TOOL_ID_PREFIX)
            ):
                issued.add(str(block["id"]))
            elif msg.get("role") == "user" and block.get("type") == "tool_result":
                answered.add(str(block.get("tool_use_id", "")))
    return len(issued & answered)


def _has_tool(body: Mapping[str, Any], name: str) -> bool:
    tools = body.get("tools")
    if not isinstance(tools, list):
        return False
    return any(isinstance(t, Mapping) and t.get("name") == name for t in tools)


def next_reply(body: Mapping[str, Any]) -> Reply:
    """The answer to a Messages request body."""
    raw = body.get("messages")
    messages: list[Mapping[str, Any]] = [m for m in raw if isinstance(m, Mapping)] if isinstance(raw, list) else []
    steps, final = plan(messages)
    done = completed_tool_calls(messages)
    idx = min(done, len(steps) - 1)
    step = steps[idx]
    if step.command is not None and _has_tool(body, BASH_TOOL):
        block = {
            "type": "tool_use",
            "id": tool_use_id(),
            "name": BASH_TOOL,
            "input": {"command": step.command, "description": "Run scripted command"},
        }
        return Reply(
            content=[{"type": "text", "text": f"Running step {idx + 1}."}, block],
            stop_reason="tool_use",
            delay=step.delay,
            step=idx,
        )
    if step.command is not None:
        # Side requests (titles, summaries) come without tools: a short text, no delay.
        return Reply(content=[{"type": "text", "text": "Scripted run"}], step=idx)
    return Reply(content=[{"type": "text", "text": final}], delay=step.delay, step=idx)


def estimate_tokens(obj: Any) -> int:
    """A rough token count (4 bytes a token): enough for realistic-looking usage."""
    return max(1, len(json.dumps(obj, separators=(",", ":"))) // 4)
