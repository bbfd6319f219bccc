"""``install()``: make code that cannot change its call sites resilient anyway.

It replaces ``claude_agent_sdk.query`` and ``claude_agent_sdk.ClaudeSDKClient``
(the package attributes) with resurgo's wrappers, bound to the keyword
arguments given to ``install``.  Limits, by construction of monkeypatching:

- only lookups made *after* ``install()`` see the wrappers: a module that ran
  ``from claude_agent_sdk import query`` earlier keeps the original (call
  ``install()`` first thing, before importing such modules);
- the patched ``ClaudeSDKClient`` is a factory, so ``isinstance(c,
  ClaudeSDKClient)`` is false for the clients it makes; a custom
  ``transport=`` gets the original, unwrapped client.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import claude_agent_sdk as _sdk
from claude_agent_sdk import ClaudeAgentOptions, Message

from resurgo.sdk._client import ResilientClient
from resurgo.sdk._query import query as _resilient_query

_lock = threading.Lock()
_saved: dict[str, Any] = {}


def install(**defaults: Any) -> None:
    """Patch ``claude_agent_sdk.query`` / ``ClaudeSDKClient``; ``defaults`` are the wrappers' keyword
    arguments (``policy=``, ``breaker=``, ``store=``, ...).  Calling it again replaces the defaults."""
    # Validate the keywords now, not at the first call deep inside someone else's code.
    ResilientClient(ClaudeAgentOptions(), **defaults)
    with _lock:
        if not _saved:
            _saved["query"] = _sdk.query
            _saved["ClaudeSDKClient"] = _sdk.ClaudeSDKClient
        original_client = _saved["ClaudeSDKClient"]

        async def query(
            *,
            prompt: str | AsyncIterable[dict[str, Any]],
            options: ClaudeAgentOptions | None = None,
            transport: Any = None,
        ) -> AsyncIterator[Message]:
            async for m in _resilient_query(prompt=prompt, options=options, transport=transport, **defaults):
                yield m

        def client_factory(options: ClaudeAgentOptions | None = None, transport: Any = None) -> Any:
            if transport is not None:
                return original_client(options, transport)
            return ResilientClient(options, **defaults)

        query.__doc__ = _resilient_query.__doc__
        query.__wrapped__ = _saved["query"]  # type: ignore[attr-defined]
        _sdk.query = query
        _sdk.ClaudeSDKClient = client_factory  # type: ignore[assignment, misc, unused-ignore]


def uninstall() -> None:
    """Put the SDK's own ``query`` and ``ClaudeSDKClient`` back."""
    with _lock:
        if _saved:
            _sdk.query = _saved.pop("query")
            _sdk.ClaudeSDKClient = _saved.pop("ClaudeSDKClient")  # type: ignore[misc]


def installed() -> bool:
    return bool(_saved)


__all__ = ["install", "installed", "uninstall"]
