"""What a failed attempt was (its fault kind and moment) and how far a run has got (its progress).

Two questions the recovery phases (:class:`resurgo.store.runs.RecoveryPhases`)
and the progress-aware back-off both need answered from the CLI's events:

* **Which fault, and when?**  A kill is noticed when the process ends; a stall
  began with the last event before the silence; an API fault began with the
  CLI's first ``api_retry`` after the API last answered (the CLI's own retries
  are part of detecting it), else with its error result.
* **How much work was lost, and when is it done again?**  :class:`Progress`
  counts tool calls issued and tool results received per attempt.  The calls
  a failed attempt had in flight are lost (the resumed session issues them
  again); a restart from the prompt loses every completed call as well.  The
  recovered run has *caught up* once it has received that many tool results
  (or its result event).  After catching up, a tool result or an answer from
  the API is *progress*: the run got further than before the fault.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from resurgo.classifier._types import ErrorClass
from resurgo.store.runs import fault_kind_of
from resurgo.supervise._process import AttemptOutcome, StreamEvent

#: Signals that end a process from outside (a person, an OOM killer, a chaos run); SIGSEGV, SIGABRT
#: and the like are the process crashing by itself, filed under ``other``.
_OUTSIDE_SIGNALS = frozenset({int(signal.SIGKILL), int(signal.SIGTERM), int(signal.SIGINT), int(signal.SIGHUP),
                              int(signal.SIGQUIT)})


def _api_status(outcome: AttemptOutcome) -> int | None:
    r = outcome.result
    if r is not None and isinstance(r.get("api_error_status"), int):
        return int(r["api_error_status"])
    for e in reversed(outcome.events):
        if e.type == "system" and e.subtype == "api_retry" and e.data is not None:
            st = e.data.get("error_status")
            if isinstance(st, int):
                return st
    return None


def fault_kind(err: ErrorClass, outcome: AttemptOutcome) -> str:
    """The kind of fault that ended ``outcome`` (one of :data:`resurgo.store.runs.FAULT_KINDS`).

    What the supervisor saw decides first (a watchdog kill is a stall, a
    SIGKILL, SIGTERM, ... that nobody in resurgo sent is a kill), then the API's status, then the
    classifier's category.
    """
    if outcome.killed_by == "stall_watchdog":
        return "stall"
    if outcome.signal is not None and outcome.killed_by is None and outcome.signal in _OUTSIDE_SIGNALS:
        return "kill"
    return fault_kind_of(err.type.value if err.type else None, err.category, _api_status(outcome))


def fault_at(kind: str, outcome: AttemptOutcome) -> float:
    """When the fault behind ``outcome`` began (wall clock); see the module's docstring."""
    evs = outcome.events
    if kind == "stall":
        return evs[-1].ts if evs else outcome.started_at
    if kind == "kill":
        return outcome.ended_at
    # the CLI's first retry after the API last answered, else its error result, else the end
    first_retry: float | None = None
    for e in evs:
        if e.type == "assistant" and e.data is not None and "error" not in e.data:
            first_retry = None  # the API answered after that retry: the fault came later
        elif e.type == "system" and e.subtype == "api_retry" and first_retry is None:
            first_retry = e.ts
    if first_retry is not None:
        return first_retry
    if outcome.result_at is not None:
        return outcome.result_at
    return outcome.ended_at


def _blocks(data: Mapping[str, Any] | None, kind: str) -> int:
    if data is None:
        return 0
    msg = data.get("message")
    content = msg.get("content") if isinstance(msg, Mapping) else None
    if not isinstance(content, list):
        return 0
    return sum(1 for b in content if isinstance(b, Mapping) and b.get("type") == kind)


@dataclass
class Progress:
    """Tool calls and results of the job's current session, and of the attempt now running."""

    #: tool results the current session holds (completed calls)
    session_results: int = 0
    #: this attempt: tool calls issued, tool results received, answers from the API
    issued: int = 0
    results: int = 0
    answers: int = 0
    #: tool results the running attempt must receive before it is back where the failed one was
    lost: int = 0
    caught_up: bool = True
    #: the attempt got further than where the previous one failed
    progressed: bool = False

    def begin(self, *, lost: int, fresh_session: bool) -> None:
        """A new attempt starts; ``lost`` tool calls must be done again before it is caught up."""
        if fresh_session:
            self.session_results = 0
        self.issued = self.results = self.answers = 0
        self.lost = max(0, lost)
        self.caught_up = self.lost == 0
        self.progressed = False

    def lost_if(self, *, restart: bool) -> int:
        """Tool calls the next attempt must redo: in flight now, plus everything for a restart.

        An attempt that failed before it caught up passes on what it had not
        redone yet (killed while starting, it redid nothing).
        """
        in_flight = max(0, self.issued - self.results)
        owed = 0 if self.caught_up else max(0, self.lost - self.results)
        return owed + in_flight + (self.session_results if restart else 0)

    def see(self, ev: StreamEvent) -> bool:
        """Count one event; True when it is the moment the attempt caught up."""
        was = self.caught_up
        data = ev.data
        if ev.type == "assistant" and data is not None:
            msg = data.get("message")
            if "error" not in data and isinstance(msg, Mapping) and msg.get("model") != "<synthetic>":
                self.issued += _blocks(data, "tool_use")
                self.answers += 1
                if self.caught_up and was:
                    self.progressed = True
        elif ev.type == "user":
            n = _blocks(data, "tool_result")
            if n:
                self.results += n
                self.session_results += n
                if self.caught_up:
                    self.progressed = True
                elif self.results >= self.lost:
                    self.caught_up = True
        elif ev.type == "result":
            self.caught_up = True
        return self.caught_up and not was

    def replay(self, events: Iterable[Mapping[str, Any]]) -> None:
        """Rebuild the counts of an attempt from its stored events (after a supervisor restart)."""
        for d in events:
            t = d.get("type")
            if t == "assistant" and "error" not in d:
                self.issued += _blocks(d, "tool_use")
            elif t == "user":
                n = _blocks(d, "tool_result")
                self.results += n
                self.session_results += n


__all__ = ["Progress", "fault_at", "fault_kind"]
