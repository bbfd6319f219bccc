"""A fault-injecting stand-in for the Anthropic Messages API, shipped with resurgo.

The real Claude Code CLI is pointed at it (``ANTHROPIC_BASE_URL``) by the demo,
the chaos command and the integration tests, so failures are produced by the
real CLI reacting to real HTTP faults, never by mocking the CLI. Stdlib only.

    from resurgo.mockapi import MockServer, Faults
    with MockServer() as srv:
        srv.set_faults(Faults(status=529, count=2))
        ...  # run claude with ANTHROPIC_BASE_URL=srv.url
"""

from __future__ import annotations

from resurgo.mockapi._capacity import Capacity
from resurgo.mockapi._errors import error_response
from resurgo.mockapi._faults import KNOWN_STATUSES, Faults
from resurgo.mockapi._script import parse_directives
from resurgo.mockapi._server import MockServer, RequestRecord
from resurgo.mockapi._shapes import tool_wait

__all__ = [
    "KNOWN_STATUSES",
    "Capacity",
    "Faults",
    "MockServer",
    "RequestRecord",
    "error_response",
    "parse_directives",
    "tool_wait",
]
