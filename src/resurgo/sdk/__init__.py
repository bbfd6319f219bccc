"""Resilience for users of the official ``claude-agent-sdk`` package (the ``sdk`` extra).

Change one import and keep the code::

    from resurgo.sdk import query              # instead of: from claude_agent_sdk import query
    async for message in query(prompt="...", options=ClaudeAgentOptions(...)):
        ...

    from resurgo.sdk import ResilientClient    # instead of: ClaudeSDKClient
    async with ResilientClient(options) as client:
        await client.query("...")
        async for message in client.receive_response():
            ...

Failures (SDK exceptions, error results, synthetic error messages) are
classified with :mod:`resurgo.classifier`; retryable ones are retried with the
:mod:`resurgo.retrier` engine's backoff and budget, behind the endpoint's
:mod:`resurgo.breaker` breaker, by *resuming the session* through the SDK's
``resume=`` option.  Non-retryable ones raise :class:`ResilientSDKError` at
once, carrying the :class:`~resurgo.classifier.ErrorClass`.  For code whose call
sites cannot change, :func:`install` patches ``claude_agent_sdk.query`` and
``ClaudeSDKClient`` in place.
"""

from __future__ import annotations

try:
    import claude_agent_sdk as _sdk  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "resurgo.sdk needs the official Claude Agent SDK: pip install 'resurgo[sdk]' (claude-agent-sdk)"
    ) from e

from resurgo.sdk._client import ResilientClient
from resurgo.sdk._core import (
    DEFAULT,
    DEFAULT_CONTINUATION,
    DEFAULT_POLICY,
    ENDPOINT_TYPES,
    SDKStats,
    breaker_for,
    reset_stats,
    stats,
)
from resurgo.sdk._errors import RecoveryEvent, ResilientSDKError, StopReason
from resurgo.sdk._evidence import endpoint_of
from resurgo.sdk._patch import install, installed, uninstall
from resurgo.sdk._query import query

__all__ = [
    "DEFAULT",
    "DEFAULT_CONTINUATION",
    "DEFAULT_POLICY",
    "ENDPOINT_TYPES",
    "RecoveryEvent",
    "ResilientClient",
    "ResilientSDKError",
    "SDKStats",
    "StopReason",
    "breaker_for",
    "endpoint_of",
    "install",
    "installed",
    "query",
    "reset_stats",
    "stats",
    "uninstall",
]
