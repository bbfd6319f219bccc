"""Shell commands for scripted tool calls that every tested CLI version runs.

Claude Code 2.1.332 refuses a Bash call whose first command is ``sleep N`` with
N >= 25 (a ``tool_use_error`` "Blocked: standalone sleep N ..." / "Blocked:
sleep N followed by: ...", and the turn goes on without running it); 2.1.197
runs it.  A scenario that needs a tool to stay "mid-tool" for a while (a kill
while the tool runs, a long step of a chaos job) must therefore not start with
a long sleep.  :func:`tool_wait` gives the one shape used everywhere: a plain
``sleep`` when it is short enough for every version, else a loop of one-second
sleeps, which no version refuses (docs/cli-versions.md).
"""

from __future__ import annotations

import math

#: The shortest leading ``sleep`` 2.1.332 refuses (its ``Dws`` constant); below this a
#: plain sleep runs everywhere.  Kept with a margin in :func:`tool_wait`.
REFUSED_LEADING_SLEEP_S = 25.0
_PLAIN_MAX_S = 20.0


def tool_wait(seconds: float) -> str:
    """A shell command that waits ``seconds`` (>= 0) and that every tested CLI version runs."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"seconds must be a finite number >= 0, got {seconds!r}")
    if seconds <= _PLAIN_MAX_S:
        return f"sleep {seconds:g}"
    whole = math.floor(seconds)
    rest = seconds - whole
    loop = f"for _ in $(seq {whole}); do sleep 1; done"
    return f"{loop}; sleep {rest:g}" if rest > 1e-9 else loop


__all__ = ["REFUSED_LEADING_SLEEP_S", "tool_wait"]
