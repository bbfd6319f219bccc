"""Resilient claude-agent-sdk queries: the same loop as the SDK's, surviving 529s and crashes.

Run it as is: without ANTHROPIC_API_KEY it starts resurgo's Messages API stand-in,
makes the first two API calls fail with 529 Overloaded, and shows the query
finishing anyway by resuming its session.  With ANTHROPIC_API_KEY set it talks
to the real API (no faults injected).

    python examples/sdk_resilient_query.py
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path

from claude_agent_sdk import AssistantMessage, ClaudeAgentOptions, ResultMessage, TextBlock

from resurgo.retrier import RetryPolicy
from resurgo.sdk import RecoveryEvent, ResilientSDKError, query, stats


def find_cli() -> str | None:
    """The npm CLI of this checkout if present, else the SDK's bundled one (None)."""
    env = os.environ.get("RESURGO_CLAUDE")
    if env:
        return env
    local = Path(__file__).resolve().parents[1] / ".tools/npm/node_modules/.bin/claude"
    return str(local) if local.exists() else shutil.which("claude")


def on_recovery(ev: RecoveryEvent) -> None:
    print(
        f"  recovering: run {ev.attempt} will {ev.action} session {ev.session_id} "
        f"after {ev.error_class.type}/{ev.error_class.category} (waited {ev.waited:.2f} s)"
    )


async def main() -> int:
    server = None
    home = tempfile.mkdtemp(prefix="resurgo-example-")
    env = {"DISABLE_TELEMETRY": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
    prompt = "Say hello in five words."
    if not os.environ.get("ANTHROPIC_API_KEY"):
        from resurgo.mockapi import Faults, MockServer

        server = MockServer()
        server.start()
        server.set_faults(Faults(status=529, count=2))
        env.update(
            ANTHROPIC_BASE_URL=server.url,
            ANTHROPIC_API_KEY="stand-in",
            HOME=home,  # a throw-away home: the stand-in run never touches your ~/.claude
            CLAUDE_CODE_MAX_RETRIES="0",  # let the 529s reach resurgo instead of the CLI's own retries
        )
        prompt = "Say hello. [[text: Hello from a run that survived two 529s.]]"
        print(f"no ANTHROPIC_API_KEY: using the stand-in at {server.url}, first two calls answer 529")
    options = ClaudeAgentOptions(cli_path=find_cli(), env=env, cwd=home, max_turns=3)
    try:
        async for message in query(
            prompt=prompt,
            options=options,
            policy=RetryPolicy(max_attempts=4, base_delay=0.2, max_delay=2.0),
            on_recovery=on_recovery,
        ):
            if isinstance(message, AssistantMessage):
                for block in message.content:
                    if isinstance(block, TextBlock):
                        print(f"claude: {block.text}")
            elif isinstance(message, ResultMessage):
                print(f"result: is_error={message.is_error} session={message.session_id}")
    except ResilientSDKError as e:
        print(f"gave up: {e.reason.value}: {e.error_class.type}/{e.error_class.category}")
        return 1
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(home, ignore_errors=True)
    s = stats()
    print(f"runs={s.runs} attempts={s.attempts} recoveries={s.recoveries}")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
