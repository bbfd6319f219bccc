"""``--concurrency N|auto`` and ``--max-concurrency``: shared by ``run``, ``batch`` and ``worker``.

A module of its own (click only) so the commands' start-up path imports
nothing of the adaptive limiter: ``auto`` becomes a configuration value here
and the supervisor builds the limit when an endpoint is first used.
"""

from __future__ import annotations

from typing import Any

import click

CONCURRENCY_HELP = ("Jobs running at once, or 'auto': found per API endpoint from 429/529 answers, the CLI's "
                    "api_retry and rate_limit events and latency (default: [supervisor] concurrency, 4).")
MAX_CONCURRENCY_HELP = "With --concurrency auto: the most jobs at once (default: [supervisor] max_concurrency, 32)."


def concurrency_option(ctx: Any, param: Any, value: str | None) -> int | str | None:
    """``--concurrency``: an integer in [1, 1024] or ``auto`` (an adaptive limit per API endpoint)."""
    if value is None:
        return None
    if value.strip().lower() == "auto":
        return "auto"
    try:
        n = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither an integer nor 'auto'") from None
    if not 1 <= n <= 1024:
        raise click.BadParameter(f"{n} is not in the range 1-1024")
    return n


__all__ = ["CONCURRENCY_HELP", "MAX_CONCURRENCY_HELP", "concurrency_option"]
